"""ClipSpec: the one source of truth for clip geometry and normalisation.

Training, calibration, export and the camera app all read a ClipSpec (from the bundle metadata
beside every artifact), so preprocessing cannot drift between them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Tuple

from ..core.errors import UsageError
from ..core.settings import Settings, setting

# Kinetics statistics, RGB in [0, 1]: the usual choice for 3D ResNets.
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)

# The teacher's flow input: the TV-L1 presets (flow.TVL1.preset) and the divisor that brings flow in
# pixels a frame to the network's range (models.FlowTeacher). Declared here, torch-free, for the CLI.
TVL1_PRESETS = ("fast", "default")
FLOW_SCALE = 2.0
# What the teacher's flow is made robust to (flow.TVL1): the camera's own motion, removed from each
# flow field ("median": its median; "affine": a robust affine fit of it), and changing light, taken
# out of the frames first ("normalize": each frame to the pair's mean and contrast; "structure_texture":
# Wedel et al.'s decomposition, the frame less most of its TV-smoothed structure).
FLOW_CAMERA = ("none", "median", "affine")
FLOW_ILLUMINATION = ("none", "normalize", "structure_texture")
# What the RGB networks' frames are made robust to: "normalize" scales each frame (its crop) to one
# mean brightness before the per-channel normalisation, so light that changes from frame to frame
# (flicker, auto-exposure, clouds) reaches the network as no change (data.transforms).
RGB_ILLUMINATION = ("none", "normalize")


@dataclass(frozen=True)
class ClipSpec(Settings):
    """Geometry and normalisation of one clip.

    frames: frames per clip (the paper: 25). size: square crop side (112).
    resize: short side the frames are scaled to before cropping (128, as in C3D/R3D practice).
    stride: temporal sampling stride, in decoded frames. mean/std: per-channel, RGB in [0, 1].
    rgb_illumination: "normalize" brings each frame to one mean brightness first (RGB_ILLUMINATION).
    Layout of the network input is always N x 3 x T x H x W, RGB.
    """

    frames: int = setting(25, lo=2, help="frames per clip (flow needs pairs)")
    size: int = setting(112, lo=8, hi=4096, help="square crop side, pixels")
    resize: int = setting(128, lo=8, hi=8192, help="short side before cropping")
    stride: int = setting(1, lo=1, help="temporal sampling stride, in decoded frames")
    mean: Tuple[float, float, float] = KINETICS_MEAN
    std: Tuple[float, float, float] = KINETICS_STD
    layout: str = "NCTHW"
    color: str = "RGB"
    # what a clip shows: whole frames, or the square around a tracked person (data.regions.person_crop);
    # the camera refuses to give a person-crop model whole frames
    crop: str = "frame"
    rgb_illumination: str = "none"

    def __post_init__(self):
        super().__post_init__()
        if self.resize < self.size:
            raise UsageError(f"--resize must be at least --size ({self.size}), got {self.resize}")
        if self.crop not in ("frame", "person"):
            raise UsageError(f"--crop must be frame or person, got {self.crop!r}")
        if self.rgb_illumination not in RGB_ILLUMINATION:
            raise UsageError(f"--rgb-illumination must be one of {', '.join(RGB_ILLUMINATION)}, "
                             f"got {self.rgb_illumination!r}")
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
        if d["crop"] == "frame":  # the default is not written: whole-frame artifacts read as they always did
            del d["crop"]
        if d["rgb_illumination"] == "none":  # likewise: artifacts from before it read unchanged
            del d["rgb_illumination"]
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
