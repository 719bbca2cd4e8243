"""Checkpoint -> ONNX (opset 17), simplified, checked, and parity-tested against PyTorch.

Every conversion is checked on real clips (the dataset's validation split and real footage):
top-1 agreement and logit difference, failing loudly past a threshold. Beside the ONNX goes the
bundle metadata every later stage reads.
"""
from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from .artifacts import atomic_write_bytes, sha256_file
from .checkpoint import build_from_checkpoint, bundle_metadata, load_checkpoint, write_metadata
from .clipspec import ClipSpec
from .errors import CheckpointError, ExportError

log = logging.getLogger(__name__)
OPSET = 17
FP32_REL_TOL = 1e-4  # max |logit difference| / max |logit|


def metadata_path(artifact) -> Path:
    """The bundle metadata file beside an artifact: NAME.onnx -> NAME.onnx.json."""
    return Path(str(artifact) + ".json")


def load_student(ckpt_path):
    ck = load_checkpoint(ckpt_path)
    if ck.get("role") == "teacher" or ck["arch"].get("in_channels") != 3:
        raise CheckpointError(f"{ckpt_path}: a flow-teacher checkpoint; export the RGB student "
                              "(the camera runs the student alone, no flow)")
    return ck, build_from_checkpoint(ck, ckpt_path)


def export_onnx(ckpt_path, out=None, batch: int = 1, dynamic_batch: bool = False, simplify: bool = True,
                parity_clips: Optional[np.ndarray] = None, rel_tol: float = FP32_REL_TOL) -> Dict:
    """Export the student of ``ckpt_path`` to ONNX. Returns the report (paths, simplification,
    parity); raises ExportError if PyTorch and ONNX Runtime disagree past ``rel_tol``."""
    import onnx

    ck, model = load_student(ckpt_path)
    spec = ClipSpec.from_dict(ck["clip_spec"])
    out = Path(out) if out else Path("engines") / (Path(ckpt_path).parent.name or "student") / "student.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    x = torch.zeros(batch, *spec.input_shape)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), str(tmp), opset_version=OPSET, input_names=["clip"],
                              output_names=["logits"], do_constant_folding=True, dynamo=False,
                              dynamic_axes={"clip": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None)
        proto = onnx.load(str(tmp))
        onnx.checker.check_model(proto)
    except Exception as e:
        raise ExportError(f"ONNX export failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    finally:
        if tmp.exists():
            tmp.unlink()
    report = {"onnx": str(out), "opset": OPSET, "batch": "dynamic" if dynamic_batch else batch,
              "nodes_before": len(proto.graph.node)}
    proto, report["simplified"] = _simplify(proto, simplify)
    report["nodes"] = len(proto.graph.node)
    atomic_write_bytes(out, proto.SerializeToString())
    clips = parity_clips if parity_clips is not None else _random_clips(spec, 2)
    report["parity"] = parity(model, out, clips, rel_tol=rel_tol, batch=None if dynamic_batch else batch)
    meta = bundle_metadata(ck, ckpt_path)
    meta.update(precision="fp32", onnx_sha256=sha256_file(out), opset=OPSET, batch=report["batch"],
                parity=report["parity"], simplified=report["simplified"], parent=str(ckpt_path))
    write_metadata(metadata_path(out), meta)
    report["metadata"] = str(metadata_path(out))
    return report


def _simplify(proto, wanted: bool):
    if not wanted:
        return proto, "off"
    try:
        import onnxsim
    except ImportError:
        log.warning("onnxsim is not installed: keeping the plain graph (pip install onnxsim)")
        return proto, "onnxsim missing: plain graph kept"
    try:
        simple, ok = onnxsim.simplify(proto)
    except Exception as e:  # onnxsim can fail on exotic graphs: say so, keep the plain one
        log.warning("onnxsim failed (%s): keeping the plain graph", str(e).splitlines()[0][:120])
        return proto, f"onnxsim failed: plain graph kept ({type(e).__name__})"
    if not ok:
        log.warning("onnxsim could not validate its result: keeping the plain graph")
        return proto, "onnxsim check failed: plain graph kept"
    return simple, "onnxsim"


def _random_clips(spec: ClipSpec, n: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, *spec.input_shape)).astype(np.float32)


def ort_session(path, providers: Optional[List[str]] = None, threads: int = 0, spinning: bool = False):
    """An ONNX Runtime session. Worker threads do not spin-wait after a run by default: on a small
    CPU their spinning starved the camera's capture thread and anything run next (measured: a
    torch model run right after an ONNX Runtime one took 14x longer)."""
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
        raise ExportError(f"{path}: ONNX Runtime cannot load it ({str(e).splitlines()[0][:200]})")


def run_onnx(session, clips: np.ndarray, batch: Optional[int] = None) -> np.ndarray:
    """Logits for clips (N, 3, T, H, W), in batches of the model's static batch if it has one."""
    inp = session.get_inputs()[0]
    name = inp.name
    if batch is None and isinstance(inp.shape[0], int):
        batch = inp.shape[0]
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


@torch.no_grad()
def parity(model, onnx_path, clips: np.ndarray, rel_tol: float, batch: Optional[int] = None,
           min_agreement: float = 1.0) -> Dict:
    """PyTorch vs ONNX Runtime on the same clips: max abs and relative logit difference, top-1
    agreement. Raises ExportError past the thresholds."""
    ref = model(torch.from_numpy(clips)).numpy()
    got = run_onnx(ort_session(onnx_path, ["CPUExecutionProvider"]), clips, batch)
    return compare_logits(ref, got, rel_tol, min_agreement, what=f"{Path(onnx_path).name} vs PyTorch")


def compare_logits(ref: np.ndarray, got: np.ndarray, rel_tol: Optional[float], min_agreement: float,
                   what: str) -> Dict:
    diff = float(np.abs(ref - got).max())
    rel = diff / max(float(np.abs(ref).max()), 1e-12)
    agree = float((ref.argmax(1) == got.argmax(1)).mean())
    rep = {"clips": int(len(ref)), "max_abs_diff": diff, "max_rel_diff": rel, "top1_agreement": agree}
    if (rel_tol is not None and rel > rel_tol) or agree < min_agreement:
        raise ExportError(f"{what}: parity check failed on {len(ref)} clips: relative logit difference "
                          f"{rel:.2e} (limit {rel_tol}), top-1 agreement {agree:.1%} (need {min_agreement:.0%})")
    return rep


def real_clips(spec: ClipSpec, index=None, video=None, max_dataset: int = 16, max_video: int = 4) -> np.ndarray:
    """Preprocessed clips for checks: centre clips of the validation split, and evenly spaced
    clips of a real video (``../shared/data/vtest.avi`` by default when it is there)."""
    from .datasets import centre_clips
    from .transforms import preprocess_clip, sample_indices
    from .video import read_frames

    clips = []
    if index is not None:
        found, _ = centre_clips(index.test, spec, max_dataset)
        clips.extend(found if found is not None else [])
    if video and Path(video).exists():
        frames = read_frames(video, max_frames=max(spec.span * max_video, spec.span), resize_short=spec.resize)
        for ix in sample_indices(len(frames), spec, "multi", num_clips=max_video):
            clips.append(preprocess_clip(frames[ix], spec))
    if not clips:
        return _random_clips(spec, 2)
    return np.stack(clips).astype(np.float32)
