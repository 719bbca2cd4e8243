"""The streaming student as an ONNX graph that takes one frame and its state, and gives the
logits and the next state: TSM's online way, the state tensors as ordinary inputs and outputs, all
5-D so ONNX Runtime and TensorRT take them as they are.

Inputs ``frame`` (N, 3, 1, S, S) and ``state_0`` .. ``state_{k-1}``; outputs ``logits`` and
``next_0`` .. ``next_{k-1}``; the caller feeds each ``next_i`` back as ``state_i``. The shapes come
from the network itself (``ResNet3D.state_shapes``) and travel in the bundle metadata
(``streaming``), so the runtime never guesses them.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn as nn

from .artifacts import atomic_write_bytes
from .bundle import commit_artifact, embed_bundle, metadata_path
from .checkpoint import bundle_metadata
from .clipspec import ClipSpec
from .errors import ExportError
from .export import FP32_REL_TOL, OPSET, _simplify, load_student, trace_to_onnx
from .onnxrt import compare_logits, ort_session, stepped_logits


class StepGraph(nn.Module):
    """``forward(frame, *state) -> (logits, *next_state)``: ResNet3D.step as a module to export."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, frame, *state):
        return self.net.step(frame, *state)


def streaming_metadata(net, spec: ClipSpec, batch: int = 1) -> Dict:
    shapes = net.state_shapes(batch, spec.size)
    return {"window": net.window, "frame_input": "frame", "logits_output": "logits",
            "state_inputs": [f"state_{i}" for i in range(len(shapes))],
            "state_outputs": [f"next_{i}" for i in range(len(shapes))],
            "state_shapes": [list(s) for s in shapes]}


def export_streaming_onnx(ckpt_path, out=None, parity_clips: Optional[np.ndarray] = None,
                          rel_tol: float = FP32_REL_TOL) -> Dict:
    """Export a causal student's stepping graph (batch 1) to ONNX, with its parity: the stepped
    ONNX fed the clips frame by frame against PyTorch's clip forward (``rel_tol`` relative)."""
    ck, net = load_student(ckpt_path)
    if not getattr(net, "causal", False):
        raise ExportError(f"{ckpt_path}: {ck['arch']['model']} is a clip network; only causal_r3d_18 streams")
    spec = ClipSpec.from_dict(ck["clip_spec"])
    stream = streaming_metadata(net, spec)
    out = Path(out) if out else Path("engines") / "student.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = torch.zeros(1, 3, 1, spec.size, spec.size)
    state = tuple(net.init_state(1, spec.size))
    proto = trace_to_onnx(StepGraph(net), (frame, *state), out, [stream["frame_input"], *stream["state_inputs"]],
                          [stream["logits_output"], *stream["state_outputs"]], what="ONNX export of the stepping graph")
    proto, simplified = _simplify(proto, True)
    if parity_clips is None:
        from .clips import rendered_clips
        parity_clips = rendered_clips(spec, 4)
    checked = out.with_name(f".{out.name}.{os.getpid()}.check.onnx")
    try:
        atomic_write_bytes(checked, proto.SerializeToString())
        with torch.no_grad():
            ref = net(torch.from_numpy(parity_clips)).numpy()
        got = stepped_logits(ort_session(checked, ["CPUExecutionProvider"]), parity_clips, stream)
        par = compare_logits(ref, got, rel_tol, 1.0, what=f"{out.name} stepped frame by frame vs PyTorch's clip")
    finally:
        if checked.exists():
            checked.unlink()
    meta = bundle_metadata(ck, ckpt_path)
    meta.update(precision="fp32", opset=OPSET, batch=1, parity=par, simplified=simplified, parent=str(ckpt_path),
                streaming=stream, input_names=[stream["frame_input"], *stream["state_inputs"]],
                output_names=[stream["logits_output"], *stream["state_outputs"]])
    embed_bundle(proto, meta)
    blob = proto.SerializeToString()
    meta["onnx_sha256"] = hashlib.sha256(blob).hexdigest()
    commit_artifact(out, blob, meta)
    return {"onnx": str(out), "opset": OPSET, "batch": 1, "parity": par, "streaming": stream,
            "metadata": str(metadata_path(out)), "nodes": len(proto.graph.node), "simplified": simplified}
