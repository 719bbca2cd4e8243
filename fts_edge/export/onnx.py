"""Checkpoint -> ONNX (opset 17), simplified, checked, and parity-tested against PyTorch.

Every conversion is checked on real clips (the dataset's validation split and real footage):
top-1 agreement and logit difference, failing loudly past a threshold. Beside the ONNX goes the
bundle metadata every later stage reads.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from ..core.artifacts import atomic_write_bytes
from ..core.errors import CheckpointError, ExportError, first_line
from ..data.clipspec import ClipSpec
from ..device.bundle import metadata_path, write_onnx
from ..device.onnxrt import compare_logits, ort_session, run_onnx  # noqa: F401  (re-exported)
from ..nets.checkpoint import build_from_checkpoint, bundle_metadata, load_checkpoint

log = logging.getLogger(__name__)
OPSET = 17
FP32_REL_TOL = 1e-4  # max |logit difference| / max |logit|


def load_student(ckpt_path):
    ck = load_checkpoint(ckpt_path)
    if ck.get("role") == "teacher" or ck["arch"].get("in_channels") != 3:
        raise CheckpointError(f"{ckpt_path}: a flow-teacher checkpoint; export the RGB student "
                              "(the camera runs the student alone, no flow)")
    return ck, build_from_checkpoint(ck, ckpt_path)


def export_onnx(ckpt_path, out=None, batch: int = 1, dynamic_batch: bool = False, simplify: bool = True,
                parity_clips: Optional[np.ndarray] = None, rel_tol: float = FP32_REL_TOL) -> Dict:
    """Export the student of ``ckpt_path`` to ONNX. Returns the report (paths, simplification,
    parity); raises ExportError if PyTorch and ONNX Runtime disagree past ``rel_tol``.

    Args:
        ckpt_path: the student's checkpoint.
        out: the ONNX path (default engines/student.onnx).
        batch: the static batch; dynamic_batch: a dynamic batch axis instead.
        simplify: run onnxsim.
        parity_clips: the clips of the parity check (None: drawn motion clips).
        rel_tol: the largest relative logit difference allowed.

    Returns:
        onnx, opset, batch, nodes, simplified, parity and metadata.
    """
    ck, model = load_student(ckpt_path)
    spec = ClipSpec.from_dict(ck["clip_spec"])
    out = Path(out) if out else Path("engines") / "student.onnx"  # what build-engine, camera and predict look for
    out.parent.mkdir(parents=True, exist_ok=True)
    x = torch.zeros(batch, *spec.input_shape)
    proto = trace_to_onnx(model, (x,), out, ["clip"], ["logits"],
                          {"clip": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None)
    report = {"onnx": str(out), "opset": OPSET, "batch": "dynamic" if dynamic_batch else batch,
              "nodes_before": len(proto.graph.node)}
    proto, report["simplified"] = _simplify(proto, simplify)
    report["nodes"] = len(proto.graph.node)
    if parity_clips is None:
        from ..data.clips import rendered_clips
        parity_clips = rendered_clips(spec, 4)
    checked = out.with_name(f".{out.name}.{os.getpid()}.check.onnx")
    try:  # the parity check runs on a file no command loads; the previous model stays until it passes
        atomic_write_bytes(checked, proto.SerializeToString())
        report["parity"] = parity(model, checked, parity_clips, rel_tol=rel_tol, batch=None if dynamic_batch else batch)
    finally:
        if checked.exists():
            checked.unlink()
    meta = bundle_metadata(ck, ckpt_path)
    meta.update(precision="fp32", opset=OPSET, batch=report["batch"], parity=report["parity"],
                simplified=report["simplified"], parent=str(ckpt_path))
    write_onnx(out, proto, meta)
    report["metadata"] = str(metadata_path(out))
    return report


def trace_to_onnx(module, args, out: Path, input_names, output_names, dynamic_axes=None, what: str = "ONNX export"):
    """Trace ``module`` (in eval mode) on ``args`` to a checked ONNX proto at opset OPSET, through a
    temporary file beside ``out`` that never outlives the call.

    Args:
        module: the network (or a stage of it).
        args: example inputs.
        out: the final path (the temporary lies beside it).
        input_names, output_names: the graph's tensor names.
        dynamic_axes: torch.onnx's dynamic axes, or None.
        what: the step's name in messages.

    Returns:
        The checked onnx.ModelProto.
    """
    import onnx

    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), args, str(tmp), opset_version=OPSET, input_names=list(input_names),
                              output_names=list(output_names), do_constant_folding=True, dynamo=False,
                              dynamic_axes=dynamic_axes)
        proto = onnx.load(str(tmp))
        onnx.checker.check_model(proto)
        return proto
    except Exception as e:
        raise ExportError(f"{what} failed: {type(e).__name__}: {first_line(e, 200)}")
    finally:
        if tmp.exists():
            tmp.unlink()


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
        log.warning("onnxsim failed (%s): keeping the plain graph", first_line(e, 120))
        return proto, f"onnxsim failed: plain graph kept ({type(e).__name__})"
    if not ok:
        log.warning("onnxsim could not validate its result: keeping the plain graph")
        return proto, "onnxsim check failed: plain graph kept"
    return simple, "onnxsim"


@torch.no_grad()
def parity(model, onnx_path, clips: np.ndarray, rel_tol: float, batch: Optional[int] = None,
           min_agreement: float = 1.0) -> Dict:
    """PyTorch vs ONNX Runtime on the same clips: max abs and relative logit difference, top-1
    agreement. Raises ExportError past the thresholds.

    Args:
        model: the PyTorch network.
        onnx_path: its ONNX.
        clips: real clips (N, 3, T, S, S).
        rel_tol: the largest relative logit difference allowed.
        batch: the ONNX's static batch, or None.
        min_agreement: the smallest top-1 agreement allowed.

    Returns:
        compare_logits' report.
    """
    ref = model(torch.from_numpy(clips)).numpy()
    got = run_onnx(ort_session(onnx_path, ["CPUExecutionProvider"]), clips, batch)
    return compare_logits(ref, got, rel_tol, min_agreement, what=f"{Path(onnx_path).name} vs PyTorch")


def export(ckpt, out=None, batch: int = 1, dynamic_batch: bool = False, video: Optional[str] = None) -> Dict:
    """Checkpoint -> ONNX, parity-checked on the validation split it was trained for and on
    ``video`` (motion clips drawn here where neither is at hand).

    Args:
        ckpt: the student's checkpoint (a streaming student gives its stage graphs).
        out: the ONNX path.
        batch, dynamic_batch: the batch axis (clip students only).
        video: real footage for the parity check, besides the validation split.

    Returns:
        export_onnx's (or export_streaming_onnx's) report.
    """
    from ..data.clips import check_clips

    ck = load_checkpoint(ckpt)
    spec = ClipSpec.from_dict(ck["clip_spec"])
    clips = check_clips(spec, bundle_metadata(ck), video)
    if ck.get("arch", {}).get("window"):  # a causal student: its stage graphs, stepped one frame at a time
        from .streaming import export_streaming_onnx
        return export_streaming_onnx(ckpt, out, parity_clips=clips[:8])
    return export_onnx(ckpt, out, batch=batch, dynamic_batch=dynamic_batch, parity_clips=clips)
