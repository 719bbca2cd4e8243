"""`fts-edge bench stream`: what classifying every frame costs, side by side in one run on one
input: the clip student recomputing its whole window for each new frame against the streaming
student (causal_r3d_18) taking one step, in ONNX Runtime, fp32 and INT8; and both against the
two-stream pipeline per window. A streaming step costs the frame stage plus at most one deeper
stage (fts_edge.streamplan), so its steps are timed over whole cycles of 8: the mean step sets the
frame rate, the p99 the worst frame. Networks of the requested width with seeded random weights
(speed does not depend on what the weights learned); real footage where given, rendered motion
otherwise.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from ..core.timing import per_call, round_robin
from ..data.clipspec import ClipSpec
from ..device.environment import environment


def _checkpoint(name: str, spec: ClipSpec, width: float, classes: int, workdir: Path) -> Path:
    from ..nets.checkpoint import make_checkpoint, save_checkpoint
    from ..nets.models import CAUSAL_MODELS, create_model

    window = spec.frames if name in CAUSAL_MODELS else None
    torch.manual_seed(0)
    net = create_model(name, classes, width=width, window=window).eval()
    arch = {"model": name, "width": width, "num_classes": classes, "in_channels": 3,
            **({"window": window} if window else {})}
    return save_checkpoint(workdir / f"{name}_w{width:g}.pt",
                           make_checkpoint(net, "student", spec, [str(i) for i in range(classes)], arch)), net


CYCLE = 8  # a streaming step's cost repeats every 8 frames (layer4 runs once a cycle)


def stepping(run_stage, stream: Dict, frames, steps: int = 1):
    """A callable that takes ``steps`` streaming steps, frame after frame, the state fed back:
    what the camera does per frame (``steps`` = CYCLE: one cycle, every stage's share)."""
    from ..device.streamplan import Stepper

    st, t = Stepper(run_stage, stream), [0]

    def go():
        for _ in range(steps):
            st.step(frames[t[0] % len(frames)])
            t[0] += 1
    return go


def run(width: float = 1.0, frames: int = 25, size: int = 112, classes: int = 51, runs: int = 7, warmup: int = 2,
        video: Optional[str] = None, out: str = "runs/bench", calib_clips: int = 2, two_stream: bool = True) -> Dict:
    """A streaming student's step against recomputing a whole window, fp32 and INT8, side by side on
    the same frames; saves bench_stream.json.

    Args:
        width, frames, size, classes: the network and clip geometry.
        runs, warmup: timed and untimed runs.
        video: footage (None: rendered motion).
        out: folder of the JSON and the exported stage graphs.
        calib_clips: clips to calibrate the INT8 stages on.
        two_stream: also time the two-stream pipeline.

    Returns:
        The result: per path p50/p99 ms, a frame's cost over a window's, frames a second, MACs.
    """
    from ..data.clips import check_clips
    from ..device.onnxrt import ort_session
    from ..device.quantize import quantize_int8
    from ..device.streamplan import STAGES, onnx_stages, stage_file, step_feeds
    from ..export.onnx import export_onnx
    from ..export.streaming import export_streaming_onnx
    from ..nets.models import count_macs, stream_macs

    spec = ClipSpec.at(frames, size)
    workdir = Path(out) / "stream_models"
    workdir.mkdir(parents=True, exist_ok=True)
    clips = check_clips(spec, None, video, n_video=max(calib_clips, 1))
    clip = np.ascontiguousarray(clips[:1])
    frame_seq = [np.ascontiguousarray(clip[:, :, t:t + 1]) for t in range(frames)]
    window_ckpt, window_net = _checkpoint("r3d_18", spec, width, classes, workdir)
    window_onnx = Path(export_onnx(window_ckpt, workdir / "window.onnx", parity_clips=clip)["onnx"])
    causal_ckpt, causal_net = _checkpoint("causal_r3d_18", spec, width, classes, workdir)
    rep = export_streaming_onnx(causal_ckpt, workdir / "stream.onnx", parity_clips=clip)
    stream_onnx, stream = Path(rep["onnx"]), rep["streaming"]
    w8 = quantize_int8(window_onnx, clips[:calib_clips], flavor="cpu")["int8_onnx"]
    feeds = step_feeds(onnx_stages(stream_onnx, ["CPUExecutionProvider"]), clips[:calib_clips], stream)
    s8 = workdir / "stream.int8.cpu.onnx"
    for k, name in enumerate(STAGES):
        quantize_int8(stage_file(stream_onnx, name), feeds[k], out=stage_file(s8, name), flavor="cpu",
                      keep_stem_fp=k == 0)
    fns, cycles = {}, {}
    for prec, w, s in (("fp32", window_onnx, stream_onnx), ("int8", w8, s8)):
        ws = ort_session(w, ["CPUExecutionProvider"])
        fns[f"window recompute {prec} (per window)"] = (lambda ws=ws: ws.run(None, {"clip": clip}))
        stages = onnx_stages(s, ["CPUExecutionProvider"])
        fns[f"streaming {prec} (per frame)"] = stepping(stages, stream, frame_seq)
        cycles[f"streaming {prec} (mean frame of a cycle)"] = stepping(stages, stream, frame_seq, CYCLE)
    macs = stream_macs(causal_net, spec.size)
    res = {"environment": environment(), "input": [1, *spec.input_shape], "width": width, "window": frames,
           "latency_frames": stream["latency"], "state_tensors": len(stream["state_shapes"]),
           "state_mib": round(sum(int(np.prod(s)) for s in stream["state_shapes"].values()) * 4 / 2 ** 20, 2),
           "gmacs": {"window": count_macs(window_net, (1, *spec.input_shape)) / 1e9,
                     **{f"streaming {k}": v / 1e9 for k, v in macs.items()}}}
    timed = round_robin({k: f for k, f in fns.items() if k.startswith("window")}, warmup, runs)
    # every step of whole cycles, so each phase is counted as often as a stream meets it
    steps = round_robin({k: f for k, f in fns.items() if k.startswith("streaming")}, CYCLE, CYCLE * max(4, runs * 2))
    timed.update(steps)
    timed.update({k: per_call(t, CYCLE) for k, t in round_robin(cycles, 1, max(3, runs)).items()})
    res["timings"] = timed
    res["frame_over_window"] = {p: timed[f"streaming {p} (mean frame of a cycle)"]["median_ms"] /
                                timed[f"window recompute {p} (per window)"]["median_ms"] for p in ("fp32", "int8")}
    res["worst_frame_over_window"] = {
        p: timed[f"streaming {p} (per frame)"]["p99_ms"] / timed[f"window recompute {p} (per window)"]["median_ms"]
        for p in ("fp32", "int8")
    }
    res["streaming_int8_frames_per_s"] = 1000.0 / timed["streaming int8 (mean frame of a cycle)"]["median_ms"]
    if two_stream:
        from .two_stream import two_stream_vs_student

        res["two_stream_vs_student"] = two_stream_vs_student(
            spec,
            classes,
            video,
            width,
            max(3, runs // 2),
            {**{k: fns[k] for k in fns if k.startswith("window")}, **cycles},
            steps={f"student ({k})": CYCLE for k in cycles},
        )
    Path(out).mkdir(parents=True, exist_ok=True)
    from ..core.artifacts import atomic_write_text
    atomic_write_text(Path(out) / "bench_stream.json", json.dumps(res, indent=2, default=str))
    return res


def print_report(res: Dict) -> None:
    env = res["environment"]
    print(f"{env.get('cpu', env['machine'])}, {env.get('cpus')} CPUs; input {'x'.join(map(str, res['input']))}, "
          f"width {res['width']:g}; streaming state: {res['state_tensors']} tensors, {res['state_mib']} MiB; "
          f"logits {res['latency_frames']} frames late")
    print("  GMACs: " + ", ".join(f"{k} {v:.3g}" for k, v in res["gmacs"].items()))
    print(f"\n  {'path':40s} {'p50 ms':>9s} {'p99 ms':>9s}")
    for k, v in res["timings"].items():
        print(f"  {k:40s} {v['p50_ms']:9.1f} {v['p99_ms']:9.1f}")
    for p, r in res["frame_over_window"].items():
        w = res["worst_frame_over_window"][p]
        print(f"  {p}: a streaming frame costs {r:.3f} of a window on the mean (1/{1 / r:.1f}), "
              f"{w:.3f} at p99 (1/{1 / w:.1f})")
    print(f"  streaming INT8: {res['streaming_int8_frames_per_s']:.1f} frames/s")
    ts = res.get("two_stream_vs_student")
    if ts:
        print("\n  per window, against the two-stream pipeline:")
        for k, v in ts["speedup_vs_opencv_two_stream"].items():
            print(f"  {k:60s} {ts[k]['median_ms']:9.1f} ms  {v:6.1f}x")
