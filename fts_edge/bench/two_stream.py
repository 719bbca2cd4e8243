"""The paper's speed claim, measured: the two-stream pipeline (TV-L1 flow on every pair of frames,
a flow network and an RGB network) against the student alone, side by side on one clip in one
run, so the ratio holds on whatever machine it is measured on.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional

import numpy as np
import torch

from ..core.timing import round_robin
from ..data.clipspec import FLOW_SCALE, ClipSpec


def two_stream_vs_student(spec: ClipSpec, classes: int, video: Optional[str], width: float, runs: int,
                          student_fns: Dict[str, Callable], steps: Optional[Dict[str, int]] = None) -> Dict:
    """The paper's claim, on one clip: OpenCV DualTVL1 on every pair + flow network + RGB network
    (and the same with the TVL1 layers), against the student alone. ``steps``: callables that give
    that many labels a call (a streaming student's cycle of steps), timed per label.

    Args:
        spec: the clip geometry.
        classes: classifier outputs.
        video: footage for the clip (None: rendered motion).
        width: the networks' width multiplier.
        runs: timed runs.
        student_fns: the student's callables by label, timed beside the two-stream pipeline.
        steps: labels a call of each ``steps`` callable gives.

    Returns:
        Medians by path and each path's speed-up over OpenCV two-stream.
    """
    from ..core.timing import per_call
    from ..data.clips import check_clips
    from ..data.transforms import denormalise
    from ..flow.evaluation import opencv_tvl1
    from ..flow.tvl1 import TVL1
    from ..nets.models import create_model

    clip = check_clips(spec, None, video, n_video=1)[:1]
    frames = np.clip(denormalise(clip[0], spec), 0, 255).astype(np.uint8).transpose(1, 2, 3, 0)  # (T, H, W, 3)
    torch.manual_seed(0)
    flow_net = create_model("r3d_18", classes, in_channels=2, width=width).eval()
    rgb_net = create_model("r3d_18", classes, width=width).eval()
    tv = TVL1.preset("fast")
    xt = torch.from_numpy(clip)

    def nets(flow):
        with torch.no_grad():
            a = torch.softmax(flow_net(flow), 1)
            b = torch.softmax(rgb_net(xt), 1)
        return (a + b) / 2

    def opencv_two_stream():
        f = np.stack([opencv_tvl1(frames[i], frames[i + 1]) for i in range(len(frames) - 1)])
        return nets(torch.from_numpy(f).permute(3, 0, 1, 2)[None] / FLOW_SCALE)

    def tvl1_two_stream():
        with torch.no_grad():
            f = tv(torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float())
        return nets(f / FLOW_SCALE)

    ocv = "two-stream (OpenCV DualTVL1 + flow net + RGB net)"
    fns = {ocv: opencv_two_stream, "two-stream (TVL1 layers + flow net + RGB net)": tvl1_two_stream}
    fns.update({f"student ({name})": fn for name, fn in student_fns.items()})
    res = {"pairs": len(frames) - 1, "width": width}
    # the OpenCV pipeline takes seconds: it gets fewer rounds, interleaved with the others all the same
    res.update(round_robin(fns, 1, runs, slow_runs={ocv: max(2, runs // 2)}))
    for k, n in (steps or {}).items():
        res[k] = per_call(res[k], n)
    base = res["two-stream (OpenCV DualTVL1 + flow net + RGB net)"]["median_ms"]
    res["speedup_vs_opencv_two_stream"] = {k: base / v["median_ms"] for k, v in res.items()
                                           if isinstance(v, dict) and "median_ms" in v}
    return res
