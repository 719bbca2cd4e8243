"""ClipSpec: the one source of truth for clip geometry and normalisation.

Training, calibration, export and the camera app all read a ClipSpec (from the bundle metadata
beside every artifact), so preprocessing cannot drift between them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Tuple

# Kinetics statistics, RGB in [0, 1]: the usual choice for 3D ResNets.
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)

# The teacher's flow input: the TV-L1 presets (flow.TVL1.preset) and the divisor that brings flow in
# pixels a frame to the network's range (models.FlowTeacher). Declared here, torch-free, for the CLI.
TVL1_PRESETS = ("fast", "default")
FLOW_SCALE = 2.0


@dataclass(frozen=True)
class ClipSpec:
    """Geometry and normalisation of one clip.

    frames: frames per clip (the paper: 25). size: square crop side (112).
    resize: short side the frames are scaled to before cropping (128, as in C3D/R3D practice).
    stride: temporal sampling stride, in decoded frames. mean/std: per-channel, RGB in [0, 1].
    Layout of the network input is always N x 3 x T x H x W, RGB.
    """

    frames: int = 25
    size: int = 112
    resize: int = 128
    stride: int = 1
    mean: Tuple[float, float, float] = KINETICS_MEAN
    std: Tuple[float, float, float] = KINETICS_STD
    layout: str = "NCTHW"
    color: str = "RGB"

    def __post_init__(self):
        if self.frames < 2:
            raise ValueError(f"ClipSpec.frames must be >= 2 (flow needs pairs), got {self.frames}")
        if self.size < 8 or self.resize < self.size:
            raise ValueError(f"ClipSpec needs 8 <= size <= resize, got size={self.size} resize={self.resize}")
        if self.stride < 1:
            raise ValueError(f"ClipSpec.stride must be >= 1, got {self.stride}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("ClipSpec.mean and std need three values, std > 0")
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    @classmethod
    def at(cls, frames: int, size: int, stride: int = 1) -> "ClipSpec":
        """A clip of ``frames`` frames cropped at ``size``, resized first in the paper's proportion
        (short side 128 for 112 crops)."""
        return cls(frames=frames, size=size, resize=max(size, round(size * 128 / 112)), stride=stride)

    @property
    def input_shape(self) -> Tuple[int, int, int, int]:
        """Shape of one preprocessed clip: (3, T, H, W)."""
        return (3, self.frames, self.size, self.size)

    @property
    def span(self) -> int:
        """How many decoded frames one clip covers."""
        return (self.frames - 1) * self.stride + 1

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ClipSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown ClipSpec fields {sorted(unknown)}")
        return cls(**d)

    def replace(self, **kw) -> "ClipSpec":
        return dataclasses.replace(self, **kw)
