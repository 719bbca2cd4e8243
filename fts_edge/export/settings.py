"""`fts-edge export`'s settings (torch-free: checked before torch loads)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..core.settings import Settings, setting


@dataclass(frozen=True)
class ExportSettings(Settings):
    """A checkpoint to ONNX: where, at which batch (or a dynamic one), checked on which footage."""

    out: Optional[str] = None  # default engines/student.onnx (engines/streaming.onnx for a streaming student)
    batch: int = setting(1, lo=1, hi=256, help="static batch size")
    dynamic_batch: bool = False
    video: Optional[str] = None

    def __post_init__(self):
        super().__post_init__()
        if self.out:
            from ..core.artifacts import check_output_file
            from ..core.errors import UsageError

            check_output_file(self.out, "--out")
            if not str(self.out).endswith(".onnx"):
                raise UsageError(f"--out {self.out}: name the ONNX file (NAME.onnx)")
