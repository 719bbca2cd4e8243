"""How a streaming student runs, shared by PyTorch, ONNX Runtime and TensorRT (no torch here).

The causal network runs in four stages: ``frame`` (stem and layer1) on every frame, then layer2,
layer3 and layer4, which halve time, for every 2nd, 4th and 8th frame. Stage k emits for the frames
t with (t - window + 1) % 2**k == 0 (so every stage emits on the last frame of a clip, as the
clip network's right-aligned strides do) and runs STAGE_DELAY[k] steps after t. The delays
interleave the stages: a step runs the frame stage and at most one deeper stage (layer2 on odd
phases, layer3 on phases 2 and 6, layer4 on phase 4), so the cost of a step stays near the mean
(the frame stage plus one layer) instead of peaking at the whole network every 8th frame. The price
is latency: the logits of the clip that ended at frame t come out at step t + LATENCY.

Each stage is its own graph: it reads its input buffer (``frame``, or ``in2``/``in3``/``in4``, the
two newest outputs of the stage before), its convolutions' pasts and the buffer it writes, and
returns ``<name>.next`` for each state it replaces (layer4 first returns ``logits``). A deeper
stage runs before the frame stage of the same step: it reads the buffer the frame stage rewrites.
The metadata ``streaming`` carries the stage graphs' inputs and outputs and every state's shape.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

STAGES = ("frame", "layer2", "layer3", "layer4")
STAGE_DELAY = (0, 1, 2, 4)
LATENCY = STAGE_DELAY[-1]
NEXT = ".next"


def schedule(n: int, window: int) -> Optional[int]:
    """The deeper stage (1, 2 or 3) that runs at step n of a stream (n = 0 at its first frame) of a
    model trained on ``window``-frame clips, or None: never one for a frame before the first."""
    p = (n - window + 1) % 8
    k = 1 if p % 2 else 2 if p in (2, 6) else 3 if p == 4 else None
    return k if k is not None and n - STAGE_DELAY[k] >= 0 else None


def stage_file(main, stage: str) -> Path:
    """The file of one stage beside the main one (the frame stage's): streaming.onnx ->
    streaming.layer2.onnx, streaming.int8.cpu.onnx -> streaming.int8.cpu.layer2.onnx,
    streaming.int8.engine -> streaming.int8.layer2.engine."""
    p = Path(main)
    return p if stage == STAGES[0] else p.with_name(f"{p.stem}.{stage}{p.suffix}")


def stage_files(main) -> Dict[str, Path]:
    return {s: stage_file(main, s) for s in STAGES}


def zero_state(stream: Dict) -> Dict[str, np.ndarray]:
    """The state before a stream's first frame, by name: zeros, the clip network's padding."""
    return {n: np.zeros(s, np.float32) for n, s in stream["state_shapes"].items()}


RunStage = Callable[[int, Dict[str, np.ndarray]], Sequence[np.ndarray]]


class Stepper:
    """One stream through a streaming model's stage graphs: ``run_stage(k, feeds)`` runs stage k
    (an ONNX Runtime session, a TensorRT engine) on feeds by input name and returns its outputs in
    ``stream["stages"][k]["outputs"]`` order. ``step(frame)`` -> the newest logits (None before
    layer4 first emits); ``warm`` once those are a whole clip's. ``record`` collects every stage's
    feeds (calibration data that is what the stage really sees)."""

    def __init__(self, run_stage: RunStage, stream: Dict, record: Optional[List[List[Dict]]] = None):
        self.run_stage, self.stream, self.record = run_stage, stream, record
        self.window = int(stream["window"])
        self.reset()

    def reset(self) -> None:
        self.state, self.n, self.logits = zero_state(self.stream), 0, None

    @property
    def warm(self) -> bool:
        return self.n >= self.window + LATENCY

    def step(self, frame: np.ndarray) -> Optional[np.ndarray]:
        k = schedule(self.n, self.window)
        for stage in ([k] if k is not None else []) + [0]:
            io = self.stream["stages"][stage]
            feeds = {name: frame if name == "frame" else self.state[name] for name in io["inputs"]}
            if self.record is not None:
                self.record[stage].append(feeds)
            for name, value in zip(io["outputs"], self.run_stage(stage, feeds)):
                if name == "logits":
                    self.logits = value
                else:
                    self.state[name[:-len(NEXT)]] = value
        self.n += 1
        return self.logits


def clip_logits(stepper: Stepper, clip: np.ndarray) -> np.ndarray:
    """A clip (3, T, H, W) stepped from a zero state, then LATENCY steps more (of blank frames,
    which no emitted logit reads): its logits, which equal the clip network's on the clip."""
    stepper.reset()
    for t in range(clip.shape[1]):
        stepper.step(np.ascontiguousarray(clip[None, :, t:t + 1], np.float32))
    blank = np.zeros((1, clip.shape[0], 1, *clip.shape[2:]), np.float32)
    for _ in range(LATENCY):
        stepper.step(blank)
    return stepper.logits[0]


def stepped_logits(run_stage: RunStage, clips: np.ndarray, stream: Dict) -> np.ndarray:
    """Each clip (N, 3, T, H, W) stepped through the stage graphs: (N, classes)."""
    s = Stepper(run_stage, stream)
    return np.stack([clip_logits(s, c) for c in clips])


def step_feeds(run_stage: RunStage, clips: np.ndarray, stream: Dict) -> List[List[Dict[str, np.ndarray]]]:
    """Every feed each stage meets while ``clips`` are stepped: per stage, its calibration data."""
    record: List[List[Dict]] = [[] for _ in STAGES]
    s = Stepper(run_stage, stream, record)
    for c in clips:
        clip_logits(s, c)
    return record


def onnx_stages(main, providers=None, threads: int = 0) -> RunStage:
    """``run_stage`` over ONNX Runtime sessions of the four stage files beside ``main``."""
    from .onnxrt import ort_session

    sessions = [ort_session(stage_file(main, s), providers, threads) for s in STAGES]
    return lambda k, feeds: sessions[k].run(None, feeds)
