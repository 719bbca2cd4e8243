"""`fts-edge flow`'s settings (torch-free: checked before the TV-L1 layers load)."""
from __future__ import annotations

from dataclasses import dataclass

from ..core.settings import Settings, setting
from ..data.clipspec import TVL1_PRESETS


@dataclass(frozen=True)
class FlowPicturesSettings(Settings):
    """A video's TV-L1 flow pictures beside its frames. The short side is bounded: TV-L1 at
    1080 px already takes seconds a pair on a CPU with the default preset."""

    device: str = "cpu"
    preset: str = "default"
    size: int = setting(240, lo=16, hi=1080, help="short side frames are scaled to")
    max_frames: int = setting(50, lo=2, help="frames to read")
    compare_opencv: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.preset not in TVL1_PRESETS:
            from ..core.errors import UsageError
            raise UsageError(f"--preset must be one of {', '.join(TVL1_PRESETS)}, got {self.preset!r}")
