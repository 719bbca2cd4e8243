"""TrainConfig: every setting of one training run (the flow teacher, the RGB baseline or the
distilled student), each declared once with its default and its range, checked when the config is
made. Torch-free, so command lines, recipes and settings files read the defaults without loading a
network. The training scripts' flags are these fields; checkpoints keep them flat (``settings``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import List, Optional

from ..core.settings import Settings, setting
from ..data.clipspec import FLOW_CAMERA, FLOW_ILLUMINATION, FLOW_SCALE, TVL1_PRESETS, ClipSpec
from ..nets.names import CAUSAL_MODELS, MODEL_NAMES, hint_layers

ROLES = ("teacher", "rgb", "student")
OPTIMIZERS = ("sgd", "adamw")
# The peak learning rate each optimiser starts from where none is given (the paper's SGD: 0.1; AdamW
# on small networks from scratch: 1e-3).
DEFAULT_LR = {"sgd": 0.1, "adamw": 1e-3}
# How a step computes: fp32; bf16 or fp16 autocast (fp16 with a gradient scaler), for GPUs; fp64,
# where rounding must not hide what is being checked (the distributed parity test).
PRECISIONS = ("fp32", "bf16", "fp16", "fp64")
MIMICS = ("mse", "correlation")  # the paper's MSE of the features, or the same on batch z-scored features
CLIP_FIELDS = ("frames", "size", "resize", "stride", "crop", "rgb_illumination")
# Settings that define a run: --resume refuses a change to any of them (epochs may grow, device,
# precision and threads may change).
RUN_DEFINING = (
    "role",
    "dataset",
    "root",
    "splits",
    "split",
    "per_class",
    "num_classes",
    "frames",
    "size",
    "resize",
    "stride",
    "crop",
    "rgb_illumination",
    "model",
    "width",
    "optimizer",
    "batch_size",
    "lr",
    "momentum",
    "weight_decay",
    "schedule",
    "warmup_epochs",
    "clip_grad",
    "teacher",
    "alpha",
    "mode",
    "mimic",
    "hint",
    "hint_from",
    "init_from_teacher",
    "init_from",
    "init_stem_from",
    "unlabeled",
    "kd",
    "kd_temperature",
    "flow_preset",
    "flow_camera",
    "flow_illumination",
    "flow_scale",
    "augment_light",
    "augment_shake",
    "seed",
    "eval_clips",
    "flip",
    "pretrained",
)


@dataclass(frozen=True)
class TrainConfig(Settings):
    """One training run. A run that would do nothing, or train backwards (a negative --clip-grad
    or --alpha), is refused when the config is made, in one line naming the flag."""

    role: str = "rgb"  # teacher (flow), rgb (baseline, alpha = 0), student (distilled)
    out: str = "runs/train"
    # data
    dataset: str = "synthetic"
    root: Optional[str] = None
    splits: Optional[str] = None
    split: int = setting(1, lo=1, hi=3)
    per_class: int = setting(40, lo=1, help="synthetic, rendered on the fly: videos per class")
    num_classes: int = setting(10, lo=2, hi=101, help="synthetic, rendered on the fly: classes")
    clip: ClipSpec = ClipSpec()  # geometry and normalisation; checkpoints and settings files keep it flat
    # network
    model: str = "r3d_18"
    width: float = setting(1.0, above=0.0, help="channel width multiplier")
    # optimisation (the paper: SGD lr 0.1, momentum 0.9, weight decay 5e-4)
    optimizer: str = "sgd"  # sgd (the paper) | adamw (lr ~1e-3; momentum unused)
    epochs: int = setting(30, lo=1)
    batch_size: int = setting(16, lo=1, help="global batch, split over torchrun processes")
    lr: float = setting(DEFAULT_LR["sgd"], above=0.0, help="peak learning rate")
    momentum: float = setting(0.9, lo=0.0, hi=0.999)
    weight_decay: float = setting(5e-4, lo=0.0)
    schedule: str = "cosine"  # cosine | step
    warmup_epochs: int = setting(1, lo=0)
    clip_grad: float = setting(5.0, lo=0.0, help="max gradient norm (0: off)")
    # distillation
    teacher: Optional[str] = None
    # The weight of the mimic term: the best mean of research/sweep_alpha.py on three development
    # copies of the motion dataset (docs/experiments.md). The paper's MSE stays the scripts' default
    # mimic (the method as published); the demo's recipe uses the correlation mimic at this alpha.
    alpha: float = setting(10.0, lo=0.0, help="weight of ||F_rgb - F_flow||^2 (0: the RGB-only baseline)")
    mode: str = "ftsnet"  # ftsnet | mers
    mimic: str = "mse"  # mse (the paper's) | correlation (batch z-scored features; see distill.mimic_term)
    hint: Optional[str] = None  # also mimic these blocks' feature maps ("layer3", "layer2,layer3"; distill.hint_term)
    hint_from: Optional[str] = None  # ... taken from this flow network's maps, not the teacher's (its causal copy)
    init_from_teacher: bool = False  # start from the teacher's weights past its 2-channel stem (init_from_teacher)
    init_from: Optional[str] = None  # ... or from another flow network's (a causal one for the streaming student)
    init_stem_from: Optional[str] = None  # the student's stem from an RGB network's (the clip student's)
    # a folder of unlabeled videos (any layout, searched recursively) the student also follows the
    # teacher on: the mimic terms only, no cross-entropy (data.datasets.unlabeled_items)
    unlabeled: Optional[str] = None
    # The teacher's class probabilities, softened at kd_temperature, as the student's targets on every
    # clip, labeled or not (Hinton, Vinyals, Dean 2015): with --unlabeled footage its classifier then
    # learns from every clip, not only from the labeled ones (distill.distillation_loss).
    kd: float = setting(0.0, lo=0.0, help="weight of the teacher's softened class probabilities as the student's "
                                          "targets, on every clip (0: off)")
    kd_temperature: float = setting(4.0, above=0.0, help="the softmax temperature of --kd")
    allow_split_anomalies: bool = False  # train on a split that data check warns about
    flip: Optional[bool] = None  # horizontal flips in training: None = off where class names pair directions
    pretrained: Optional[str] = None  # a torchvision-format r3d_18 state dict to start from (load_pretrained)
    # flow
    flow_preset: str = "fast"
    flow_camera: str = "none"  # the camera's motion removed from the teacher's flow (flow.TVL1)
    flow_illumination: str = "none"  # changing light taken out of the frames before TV-L1 (flow.TVL1)
    # RGB augmentation against what breaks the method (the student and the RGB baseline)
    augment_light: float = setting(0.0, lo=0.0, hi=0.9, help="each frame's brightness scaled by up to +-this")
    augment_shake: float = setting(0.0, lo=0.0, hi=20.0, help="a hand-held camera's jitter, RMS pixels a frame at "
                                                              "128 px")
    flow_scale: float = setting(FLOW_SCALE, above=0.0, help="flow divisor before the teacher's network")
    flow_cache: Optional[str] = None
    # run
    seed: int = setting(0, lo=0)
    eval_clips: int = setting(1, lo=1)
    device: str = "cpu"
    precision: str = "fp32"
    threads: int = setting(0, lo=0, hi=256)
    # the data pipeline and the GPU (none of these change what is trained)
    workers: int = setting(-1, lo=-1, hi=64, help="DataLoader worker processes (-1: none on 2 cores or fewer, else "
                                                  "half the cores, at most 8)")
    frame_cache_mb: int = setting(256, lo=0, help="decoded small videos kept in memory, MB (shared by the workers)")
    channels_last: Optional[bool] = None  # channels_last_3d memory format (None: on CUDA)
    compile: bool = False  # torch.compile the step's module

    def __post_init__(self):
        super().__post_init__()
        for name, allowed in (("role", ROLES), ("optimizer", OPTIMIZERS), ("precision", PRECISIONS),
                              ("mimic", MIMICS), ("schedule", ("cosine", "step")), ("mode", ("ftsnet", "mers")),
                              ("model", MODEL_NAMES), ("flow_preset", TVL1_PRESETS),
                              ("flow_camera", FLOW_CAMERA), ("flow_illumination", FLOW_ILLUMINATION)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}, "
                                 f"got {getattr(self, name)!r}")
        if self.role == "student" and not self.teacher and self.alpha > 0:
            raise ValueError("the student needs --teacher CKPT (or --alpha 0 for the RGB baseline)")
        if self.hint is not None:
            hint_layers(self.hint)
            if self.role != "student":
                raise ValueError("--hint is a distillation setting: it needs a student with a teacher")
        if self.hint_from and not self.hint:
            raise ValueError("--hint-from names where the --hint maps come from: give --hint LAYER too")
        if self.pretrained and self.init_from_teacher:
            raise ValueError("--pretrained and --init-from-teacher both set the starting weights: choose one")
        if self.init_from_teacher and (self.role == "rgb" or not self.teacher):
            raise ValueError("--init-from-teacher is a distillation setting: it needs a student (or a flow network) "
                             "with a teacher")
        if self.init_from and (self.init_from_teacher or self.pretrained or self.role != "student"):
            raise ValueError("--init-from sets a student's starting weights: not with --init-from-teacher or "
                             "--pretrained, and not for the teacher or the RGB baseline")
        if self.unlabeled and (self.role != "student" or not self.teacher or self.alpha <= 0):
            raise ValueError("--unlabeled videos teach the student through the teacher's features: it needs a "
                             "student with --teacher and --alpha above 0")
        if self.kd > 0 and (self.role != "student" or not self.teacher or self.alpha <= 0):
            raise ValueError("--kd follows the teacher's class probabilities: it needs a student with --teacher and "
                             "--alpha above 0")
        if self.init_stem_from and (self.pretrained or self.role != "student"):
            raise ValueError("--init-stem-from sets a student's stem: not with --pretrained, and only for a student")

    @classmethod
    def from_settings(cls, settings: dict) -> "TrainConfig":
        """A TrainConfig from flat settings (the flags, a checkpoint's saved config): the clip's
        fields (frames, size, resize, stride) go into ``clip``, the rest by name; None keeps a
        default."""
        flat = {k: v for k, v in dict(settings).items() if v is not None}
        geometry = {k: flat.pop(k) for k in CLIP_FIELDS if k in flat}
        clip = dataclasses.replace(flat.pop("clip", None) or ClipSpec(), **geometry)
        return cls(clip=clip, **flat)

    def settings(self) -> dict:
        """The flat form saved in checkpoints and compared on --resume: the clip's geometry as
        top-level keys, as the flags spell them."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "clip"}
        d.update({k: getattr(self.clip, k) for k in CLIP_FIELDS})
        return d

    @property
    def spec(self) -> ClipSpec:
        return self.clip

    def index(self):
        from ..data.datasets import index_from_settings

        return index_from_settings(self.settings())


DEFAULTS = TrainConfig()  # the defaults every other recipe and command line reads


def changed_settings(saved: dict, cfg: TrainConfig) -> List[str]:
    """The run-defining settings in which ``cfg`` differs from a checkpoint's saved config."""
    now = cfg.settings()
    return [f"--{k.replace('_', '-')} {saved.get(k)!r} (now {now[k]!r})" for k in RUN_DEFINING
            if k in saved and saved.get(k) != now[k]]


def window_of(cfg: TrainConfig) -> Optional[int]:
    """A causal network averages over the clip length it trains on; others have no window."""
    return cfg.spec.frames if cfg.model in CAUSAL_MODELS else None


def arch_of(cfg: TrainConfig, num_classes: int) -> dict:
    arch = {"model": cfg.model, "width": cfg.width, "num_classes": num_classes,
            "in_channels": 2 if cfg.role == "teacher" else 3}
    if window_of(cfg):
        arch["window"] = window_of(cfg)
    return arch
