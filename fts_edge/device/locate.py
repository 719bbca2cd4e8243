"""Where the commands find a model when none is named: engines/ first (where export writes), then
the newest run of `fts-edge train` or the demo under runs/, each folder's best artifact first; an
engine only where TensorRT is; a checkpoint last (it needs torch)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

from ..core.errors import FtsError

# What runs on this machine, best first: the camera, predict, evaluate, verify and bench take these.
DEPLOYED = ("student.int8.engine", "student.fp16.engine", "student.int8.cpu.onnx", "student.onnx")
# What engines are built from: the fp32 ONNX.
BUILD_FROM = ("student.onnx",)
CHECKPOINT = Path("runs/demo/student/best.pt")


def model_folders() -> List[Path]:
    """engines/, then every runs/*/engines/ folder, newest first."""
    runs = sorted((d for d in Path("runs").glob("*/engines") if d.is_dir()), key=lambda d: d.stat().st_mtime,
                  reverse=True)
    return [Path("engines"), *runs]


def default_model(names: Sequence[str] = DEPLOYED, checkpoint: bool = True) -> str:
    """The first of ``names`` found in ``model_folders()``, else the demo's student checkpoint."""
    from .engine import tensorrt_or_none

    for folder in model_folders():
        for name in names:
            p = folder / name
            if p.is_file() and (p.suffix != ".engine" or tensorrt_or_none() is not None):
                return str(p)
    if checkpoint and CHECKPOINT.is_file():
        return str(CHECKPOINT)
    raise FtsError("no model given and none found in engines/ or runs/*/engines/; pass --model (or the ONNX), or run "
                   "`fts-edge train DATA` or `fts-edge demo` first")
