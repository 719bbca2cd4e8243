"""`fts-edge bench stream`: what classifying every frame costs, side by side in one run on one
input: the clip student recomputing its whole window for each new frame against the streaming
student (causal_r3d_18) taking one step, in ONNX Runtime, fp32 and INT8; and both against the
two-stream pipeline per window. Networks of the requested width with seeded random weights (speed
does not depend on what the weights learned); real footage where given, rendered motion otherwise.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from .bench_model import round_robin
from .clipspec import ClipSpec
from .environment import environment
from .onnxrt import zero_state


def _checkpoint(name: str, spec: ClipSpec, width: float, classes: int, workdir: Path) -> Path:
    from .checkpoint import make_checkpoint, save_checkpoint
    from .models import CAUSAL_MODELS, create_model

    window = spec.frames if name in CAUSAL_MODELS else None
    torch.manual_seed(0)
    net = create_model(name, classes, width=width, window=window).eval()
    arch = {"model": name, "width": width, "num_classes": classes, "in_channels": 3,
            **({"window": window} if window else {})}
    return save_checkpoint(workdir / f"{name}_w{width:g}.pt",
                           make_checkpoint(net, "student", spec, [str(i) for i in range(classes)], arch))


class Stepper:
    """One streaming step a call, the state fed back: what the camera does per frame."""

    def __init__(self, session, stream: Dict, frames: np.ndarray):
        self.s, self.stream, self.frames, self.t = session, stream, frames, 0
        self.state = zero_state(stream)

    def __call__(self):
        frame = self.frames[self.t % len(self.frames)]
        self.t += 1
        out = self.s.run(None, {self.stream["frame_input"]: frame, **self.state})
        self.state = dict(zip(self.stream["state_inputs"], out[1:]))
        return out[0]


def run(width: float = 1.0, frames: int = 25, size: int = 112, classes: int = 51, runs: int = 7, warmup: int = 2,
        video: Optional[str] = None, out: str = "runs/bench", calib_clips: int = 2, two_stream: bool = True) -> Dict:
    from .clips import check_clips
    from .export import export_onnx
    from .onnxrt import ort_session, step_feeds
    from .quantize import quantize_int8
    from .streaming_onnx import export_streaming_onnx

    spec = ClipSpec.at(frames, size)
    workdir = Path(out) / "stream_models"
    workdir.mkdir(parents=True, exist_ok=True)
    clips = check_clips(spec, None, video, n_video=max(calib_clips, 1))
    clip = np.ascontiguousarray(clips[:1])
    frame_seq = [np.ascontiguousarray(clip[:, :, t:t + 1]) for t in range(frames)]
    window_onnx = Path(export_onnx(_checkpoint("r3d_18", spec, width, classes, workdir), workdir / "window.onnx",
                                   parity_clips=clip)["onnx"])
    rep = export_streaming_onnx(_checkpoint("causal_r3d_18", spec, width, classes, workdir), workdir / "stream.onnx",
                                parity_clips=clip)
    stream_onnx, stream = Path(rep["onnx"]), rep["streaming"]
    w8 = quantize_int8(window_onnx, clips[:calib_clips], flavor="cpu")["int8_onnx"]
    feeds = step_feeds(ort_session(stream_onnx, ["CPUExecutionProvider"]), clips[:calib_clips], stream)
    s8 = quantize_int8(stream_onnx, feeds, flavor="cpu")["int8_onnx"]
    fns = {}
    for prec, w, s in (("fp32", window_onnx, stream_onnx), ("int8", w8, s8)):
        ws = ort_session(w, ["CPUExecutionProvider"])
        fns[f"window recompute {prec} (per window)"] = (lambda ws=ws: ws.run(None, {"clip": clip}))
        fns[f"streaming {prec} (per frame)"] = Stepper(ort_session(s, ["CPUExecutionProvider"]), stream, frame_seq)
    # a streaming step is ~1/12 of a window: it gets more rounds, interleaved with the windows all the same
    res = {"environment": environment(), "input": [1, *spec.input_shape], "width": width, "window": frames,
           "state_tensors": len(stream["state_shapes"]),
           "state_mib": round(sum(int(np.prod(s)) for s in stream["state_shapes"]) * 4 / 2 ** 20, 2)}
    timed = round_robin({k: f for k, f in fns.items() if k.startswith("window")}, warmup, runs)
    timed.update(round_robin({k: f for k, f in fns.items() if k.startswith("streaming")}, warmup * 5, runs * 10))
    res["timings"] = timed
    res["frame_over_window"] = {p: timed[f"streaming {p} (per frame)"]["median_ms"] /
                                timed[f"window recompute {p} (per window)"]["median_ms"] for p in ("fp32", "int8")}
    res["streaming_int8_frames_per_s"] = 1000.0 / timed["streaming int8 (per frame)"]["median_ms"]
    if two_stream:
        from .two_stream import two_stream_vs_student
        res["two_stream_vs_student"] = two_stream_vs_student(spec, classes, video, width, max(3, runs // 2),
                                                             {k: fns[k] for k in fns})
    Path(out).mkdir(parents=True, exist_ok=True)
    from .artifacts import atomic_write_text
    atomic_write_text(Path(out) / "bench_stream.json", json.dumps(res, indent=2, default=str))
    return res


def print_report(res: Dict) -> None:
    env = res["environment"]
    print(f"{env.get('cpu', env['machine'])}, {env.get('cpus')} CPUs; input {'x'.join(map(str, res['input']))}, "
          f"width {res['width']:g}; streaming state: {res['state_tensors']} tensors, {res['state_mib']} MiB")
    print(f"\n  {'path':40s} {'p50 ms':>9s} {'p99 ms':>9s}")
    for k, v in res["timings"].items():
        print(f"  {k:40s} {v['p50_ms']:9.1f} {v['p99_ms']:9.1f}")
    for p, r in res["frame_over_window"].items():
        print(f"  {p}: a streaming frame costs {r:.3f} of a window (1/{1 / r:.1f})")
    print(f"  streaming INT8: {res['streaming_int8_frames_per_s']:.1f} frames/s")
    ts = res.get("two_stream_vs_student")
    if ts:
        print("\n  per window, against the two-stream pipeline:")
        for k, v in ts["speedup_vs_opencv_two_stream"].items():
            print(f"  {k:60s} {ts[k]['median_ms']:9.1f} ms  {v:6.1f}x")
