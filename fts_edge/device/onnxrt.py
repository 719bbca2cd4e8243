"""ONNX Runtime sessions and logit comparison, shared by export, quantization, the runtime and
`verify`. Imports no torch."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..core.errors import ExportError, first_line


def ort_session(path, providers: Optional[List[str]] = None, threads: int = 0, spinning: bool = False):
    """An ONNX Runtime session. Worker threads do not spin-wait after a run by default: on a small
    CPU their spinning starves the camera's capture thread and whatever runs next."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        opts.intra_op_num_threads = threads
    avail = ort.get_available_providers()
    providers = [p for p in (providers or ["CUDAExecutionProvider", "CPUExecutionProvider"]) if p in avail]
    try:
        return ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as e:
        raise ExportError(f"{path}: ONNX Runtime cannot load it ({first_line(e, 200)})")


def static_batch(session) -> Optional[int]:
    dim0 = session.get_inputs()[0].shape[0]
    return dim0 if isinstance(dim0, int) and dim0 > 0 else None


def run_onnx(session, clips: np.ndarray, batch: Optional[int] = None) -> np.ndarray:
    """Logits for clips (N, 3, T, H, W), in batches of the model's static batch if it has one."""
    name = session.get_inputs()[0].name
    batch = batch or static_batch(session)
    b = batch or len(clips)
    outs = []
    for i in range(0, len(clips), b):
        chunk = clips[i:i + b]
        if batch and len(chunk) < batch:  # a static-batch model: pad the last chunk
            pad = np.zeros((batch - len(chunk), *chunk.shape[1:]), chunk.dtype)
            outs.append(session.run(None, {name: np.concatenate([chunk, pad])})[0][:len(chunk)])
        else:
            outs.append(session.run(None, {name: chunk})[0])
    return np.concatenate(outs)


def compare_logits(ref: np.ndarray, got: np.ndarray, rel_tol: Optional[float], min_agreement: float,
                   what: str) -> Dict:
    """Top-1 agreement and logit differences of two models on the same clips; ExportError past
    ``rel_tol`` (max |diff| / max |ref|) or below ``min_agreement``.

    Args:
        ref, got: logits (N, classes) of the reference and the model checked.
        rel_tol: the largest max |diff| / max |ref| allowed (None: not checked).
        min_agreement: the smallest top-1 agreement allowed.
        what: the pair's name in the message.

    Returns:
        clips, max and mean abs diff, max relative diff, top-1 agreement.
    """
    diff = np.abs(ref - got)
    rel = float(diff.max()) / max(float(np.abs(ref).max()), 1e-12)
    agree = float((ref.argmax(1) == got.argmax(1)).mean())
    rep = {"clips": int(len(ref)), "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
           "max_rel_diff": rel, "top1_agreement": agree}
    if (rel_tol is not None and rel > rel_tol) or agree < min_agreement:
        raise ExportError(f"{what}: parity check failed on {len(ref)} clips: relative logit difference "
                          f"{rel:.2e} (limit {rel_tol}), top-1 agreement {agree:.1%} (need {min_agreement:.0%})")
    return rep


def onnx_io(path) -> Dict:
    """Input/output names and shapes of an ONNX file, read without running it."""
    import onnx

    try:
        g = onnx.load(str(path), load_external_data=False).graph
    except Exception as e:
        raise ExportError(f"{path}: not a readable ONNX model ({type(e).__name__})")

    def dims(v):
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or -1) for d in v.type.tensor_type.shape.dim]

    inits = {i.name for i in g.initializer}
    return {"inputs": {v.name: dims(v) for v in g.input if v.name not in inits},
            "outputs": {v.name: dims(v) for v in g.output}, "path": str(Path(path))}


