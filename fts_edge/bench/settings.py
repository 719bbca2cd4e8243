"""`fts-edge bench`'s settings, built once from the flags and checked here (torch-free, so a bad
flag is one line before anything heavy loads)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from ..core.errors import UsageError
from ..core.settings import Settings, setting

TARGETS = ("pipeline", "flow", "stream", "train", "regions", "tracks", "scenes")
BACKENDS = ("torch", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
FLOW_DEVICES = ("cpu", "cuda")


def _words(flag: str, value, allowed) -> Tuple[str, ...]:
    items = tuple(v.strip() for v in str(value).split(",") if v.strip())
    bad = [v for v in items if v not in allowed]
    if not items or bad:
        raise UsageError(f"{flag} {value}: choose from {', '.join(allowed)}, comma-separated"
                         + (f" ({bad[0]!r} is not one)" if bad else ""))
    return items


def _numbers(flag: str, value, kind=float) -> Tuple:
    try:
        items = tuple(kind(v) for v in str(value).split(",") if v.strip())
    except ValueError:
        items = ()
    if not items or any(v <= 0 for v in items):
        raise UsageError(f"{flag} {value}: numbers above 0, comma-separated (e.g. 1.0,0.5)")
    return items


def _worker_counts(value) -> Tuple[int, ...]:
    try:
        counts = tuple(int(v) for v in str(value).split(",") if v.strip())
    except ValueError:
        counts = ()
    if not counts or any(c < 0 or c > 64 for c in counts):
        raise UsageError(f"--workers {value}: worker counts from 0 to 64, comma-separated (e.g. 0,2)")
    return counts


def _sizes(value) -> Tuple[Tuple[int, int], ...]:
    try:
        sizes = tuple(tuple(int(v) for v in s.lower().split("x")) for s in str(value).split(","))
    except ValueError:
        sizes = ()
    if not sizes or any(len(hw) != 2 or min(hw) < 16 or max(hw) > 4096 for hw in sizes):
        raise UsageError(f"--sizes {value}: HxW pairs from 16x16 to 4096x4096, comma-separated (e.g. 112x112,240x320)")
    return sizes


@dataclass(frozen=True)
class BenchSettings(Settings):
    """What to measure and how: the target (the pipeline per backend, the flow stage, a streaming
    frame against a window, training), or a given model (``model``); rounds, warm-up, the clip."""

    target: str = "pipeline"
    model: Optional[str] = None
    input: Optional[str] = None
    device: Optional[str] = None
    threads: int = setting(0, lo=0, hi=256)
    sizes: Tuple[Tuple[int, int], ...] = ((112, 112), (240, 320))
    devices: Optional[Tuple[str, ...]] = None
    runs: int = setting(7, lo=1, help="timed rounds (the median is reported)")
    out: str = "runs/bench"
    widths: Tuple[float, ...] = (1.0, 0.5)
    backends: Tuple[str, ...] = BACKENDS
    precisions: Tuple[str, ...] = PRECISIONS
    frames: int = setting(25, lo=2)
    size: int = setting(112, lo=8, hi=4096)
    batch: int = setting(1, lo=1, hi=256)
    warmup: int = setting(2, lo=0)
    classes: int = setting(51, lo=2, help="classifier outputs (51: HMDB51)")
    two_stream: bool = True
    geometries: Tuple[str, ...] = ("paper", "demo")  # train: the clip geometries measured
    workers: Tuple[int, ...] = (0, 2)  # train: the DataLoader worker counts compared
    steps: int = setting(6, lo=2, help="train: optimiser steps of each data pipeline run")
    per_class: int = setting(2, lo=1, help="train: videos a class of the generated set")
    video_frames: int = setting(90, lo=8, help="train: frames a video of the generated set")
    epoch_rss: Tuple[int, ...] = ()  # train: also the peak memory of one epoch on sets of these many videos
    regions: Tuple[int, ...] = (1, 4, 16)  # regions: regions per input (squares: a grid over the frame)
    streaming_model: Optional[str] = None  # tracks: the streaming student beside --model
    whole: Optional[str] = None  # scenes: the whole-frame model beside --model (the person-crop model)
    detect_every: int = setting(1, lo=1, help="tracks: run the person detector every N frames")
    every: int = setting(5, lo=1, help="regions, tracks: classify every N frames")

    @classmethod
    def from_flags(cls, **kw) -> "BenchSettings":
        """The settings from the command line's strings: lists are comma-separated and checked."""
        kw = {k: v for k, v in kw.items() if v is not None}
        if "widths" in kw:
            kw["widths"] = _numbers("--widths", kw["widths"])
        if "backends" in kw:
            kw["backends"] = _words("--backends", kw["backends"], BACKENDS)
        if "precisions" in kw:
            kw["precisions"] = _words("--precisions", kw["precisions"], PRECISIONS)
        if "devices" in kw:
            kw["devices"] = _words("--devices", kw["devices"], FLOW_DEVICES)
        if "sizes" in kw:
            kw["sizes"] = _sizes(kw["sizes"])
        if "geometries" in kw:
            kw["geometries"] = _words("--geometries", kw["geometries"], ("paper", "demo"))
        if "workers" in kw:
            kw["workers"] = _worker_counts(kw["workers"])
        if "epoch_rss" in kw:
            kw["epoch_rss"] = tuple(int(v) for v in _numbers("--epoch-rss", kw["epoch_rss"], int))
        if "regions" in kw:
            kw["regions"] = tuple(int(v) for v in _numbers("--regions", kw["regions"], int))
            if any(round(v ** 0.5) ** 2 != v for v in kw["regions"]):
                raise UsageError(f"--regions {','.join(map(str, kw['regions']))}: square counts (1, 4, 9, 16), a grid")
        if kw.pop("no_two_stream", False):
            kw["two_stream"] = False
        return cls.make(**kw)

    def __post_init__(self):
        super().__post_init__()
        if self.target not in TARGETS:
            raise UsageError(f"bench {self.target}: choose from {', '.join(TARGETS)}")
        if self.device not in (None, "cpu", "cuda"):
            raise UsageError(f"--device must be cpu or cuda, got {self.device!r}")
        if self.target in ("regions", "tracks", "scenes") and not (self.model and self.input):
            what = "a scene folder (data synth --objects 2)" if self.target == "scenes" else "footage (a video file)"
            raise UsageError(f"bench {self.target} needs --model MODEL and --input: {what}")


def checked_input(path: Optional[str], min_frames: int = 2) -> Optional[str]:
    """The footage a benchmark times on, refused in one line where it is missing, unreadable or
    shorter than ``min_frames`` frames (rather than timing something else in its place)."""
    if not path:
        return None
    from ..core.errors import VideoError
    from ..data.video import read_frames

    n = len(read_frames(path, max_frames=min_frames, strict=False))
    if n < min_frames:
        raise VideoError(f"{path}: {n} frame decodes; the benchmark needs at least {min_frames}")
    return str(path)
