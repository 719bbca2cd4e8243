"""The streaming student as four ONNX stage graphs (fts_edge.streamplan): TSM's online way, the
state tensors as ordinary inputs and outputs, all 5-D so ONNX Runtime and TensorRT take them.

``streaming.onnx`` is the frame stage (inputs ``frame`` (1, 3, 1, S, S), its convolutions' pasts
and ``in2``) and carries the bundle; ``streaming.layer2.onnx``, ``.layer3`` and ``.layer4`` lie
beside it, each recorded in the bundle by sha256. The metadata ``streaming`` names every stage's
inputs and outputs and every state's shape, all read from the network itself
(``ResNet3D.state_spec``/``stage_io``), so the runtime never guesses them.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn as nn

from ..core.artifacts import atomic_write_bytes
from ..core.errors import ExportError
from ..data.clipspec import ClipSpec
from ..device.bundle import metadata_path, write_onnx
from ..device.onnxrt import compare_logits
from ..device.streamplan import LATENCY, STAGE_DELAY, STAGES, onnx_stages, stage_file, stepped_logits
from ..nets.checkpoint import bundle_metadata
from .onnx import FP32_REL_TOL, OPSET, _simplify, load_student, trace_to_onnx


class StageGraph(nn.Module):
    """``forward(*inputs) -> outputs``: one stage of ResNet3D's stream as a module to export."""

    def __init__(self, net, k: int):
        super().__init__()
        self.net, self.k = net, k

    def forward(self, *inputs):
        return self.net.stage_step(self.k, *inputs)


def streaming_metadata(net, spec: ClipSpec, batch: int = 1) -> Dict:
    shapes = {n: list(s) for n, s, _ in net.state_spec(batch, spec.size)}
    stages = []
    for k, name in enumerate(STAGES):
        ins, outs = net.stage_io(k, batch, spec.size)
        stages.append({"name": name, "inputs": ins, "outputs": outs, "delay": STAGE_DELAY[k]})
    return {"window": net.window, "latency": LATENCY, "pool_frames": net.pool_frames,
            "frame_input": "frame", "frame_shape": [batch, net.in_channels, 1, spec.size, spec.size],
            "logits_output": "logits", "stages": stages, "state_shapes": shapes}


def export_streaming_onnx(ckpt_path, out=None, parity_clips: Optional[np.ndarray] = None,
                          rel_tol: float = FP32_REL_TOL) -> Dict:
    """Export a causal student's stage graphs (batch 1) to ONNX, with its parity: the stages
    stepped through the clips frame by frame in ONNX Runtime against PyTorch's clip forward
    (``rel_tol`` relative)."""
    ck, net = load_student(ckpt_path)
    if not getattr(net, "causal", False):
        raise ExportError(f"{ckpt_path}: {ck['arch']['model']} is a clip network; only causal_r3d_18 streams")
    spec = ClipSpec.from_dict(ck["clip_spec"])
    stream = streaming_metadata(net, spec)
    out = Path(out) if out else Path("engines") / "streaming.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    state = net.init_state(1, spec.size)
    frame = torch.zeros(stream["frame_shape"])
    check = out.with_name(f".{out.name}.{os.getpid()}.check.onnx")  # the four stages, checked before they land
    protos, simplified = {}, {}
    try:
        for k, st in enumerate(stream["stages"]):
            args = tuple(frame if n == "frame" else state[n] for n in st["inputs"])
            proto = trace_to_onnx(StageGraph(net, k), args, out, st["inputs"], st["outputs"],
                                  what=f"ONNX export of the {st['name']} stage")
            protos[st["name"]], simplified[st["name"]] = _simplify(proto, True)
            atomic_write_bytes(stage_file(check, st["name"]), protos[st["name"]].SerializeToString())
        if parity_clips is None:
            from ..data.clips import rendered_clips
            parity_clips = rendered_clips(spec, 4)
        with torch.no_grad():
            ref = net(torch.from_numpy(parity_clips)).numpy()
        got = stepped_logits(onnx_stages(check, ["CPUExecutionProvider"]), parity_clips, stream)
        par = compare_logits(ref, got, rel_tol, 1.0, what=f"{out.name}'s stages stepped frame by frame vs PyTorch's "
                                                          "clip")
    finally:
        for name in STAGES:
            if stage_file(check, name).exists():
                stage_file(check, name).unlink()
    for st in stream["stages"][1:]:  # the other stages first: the frame stage's commit is the last step
        blob = protos[st["name"]].SerializeToString()
        st["sha256"] = hashlib.sha256(blob).hexdigest()
        atomic_write_bytes(stage_file(out, st["name"]), blob)
    meta = bundle_metadata(ck, ckpt_path)
    meta.update(precision="fp32", opset=OPSET, batch=1, parity=par, simplified=simplified[STAGES[0]],
                parent=str(ckpt_path), streaming=stream, input_names=stream["stages"][0]["inputs"],
                output_names=stream["stages"][0]["outputs"])
    write_onnx(out, protos[STAGES[0]], meta)
    return {"onnx": str(out), "stages": {s: str(stage_file(out, s)) for s in STAGES}, "opset": OPSET, "batch": 1,
            "parity": par, "streaming": stream, "metadata": str(metadata_path(out)),
            "nodes": sum(len(p.graph.node) for p in protos.values()), "simplified": simplified[STAGES[0]]}
