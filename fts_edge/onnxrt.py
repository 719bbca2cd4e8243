"""ONNX Runtime sessions and logit comparison, shared by export, quantization, the runtime and
`verify`. Imports no torch."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .errors import ExportError, first_line


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
    ``rel_tol`` (max |diff| / max |ref|) or below ``min_agreement``."""
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


# -- stepping graphs (the streaming student; fts_edge.streaming_onnx writes them) -------------
def zero_state(stream: Dict) -> Dict[str, np.ndarray]:
    """The state before a stream's first frame, by input name."""
    return {n: np.zeros(s, np.float32) for n, s in zip(stream["state_inputs"], stream["state_shapes"])}


def step_feeds(session, clips: np.ndarray, stream: Dict) -> List[Dict[str, np.ndarray]]:
    """Every (frame, state) feed met while stepping ``clips`` through a stepping graph from a zero
    state: the calibration data of its INT8 version (the states it will really see)."""
    feeds = []
    for clip in clips:
        state = zero_state(stream)
        for t in range(clip.shape[1]):
            feed = {stream["frame_input"]: np.ascontiguousarray(clip[None, :, t:t + 1]), **state}
            feeds.append(feed)
            state = dict(zip(stream["state_inputs"], session.run(None, feed)[1:]))
    return feeds


def stepped_logits(session, clips: np.ndarray, stream: Dict) -> np.ndarray:
    """Feed each clip (N, 3, T, H, W) frame by frame from a zero state through an ONNX stepping
    graph; the logits after its last frame, (N, classes)."""
    out = []
    for clip in clips:
        state = zero_state(stream)
        for t in range(clip.shape[1]):
            res = session.run(None, {stream["frame_input"]: np.ascontiguousarray(clip[None, :, t:t + 1]), **state})
            state = dict(zip(stream["state_inputs"], res[1:]))
        out.append(res[0][0])
    return np.stack(out)
