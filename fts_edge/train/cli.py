"""Command lines of the training scripts in train/ (kept in the library so they are tested)."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..core.errors import FtsError, guarded
from ..data.clipspec import FLOW_CAMERA, FLOW_ILLUMINATION, RGB_ILLUMINATION, TVL1_PRESETS
from ..nets.models import HINT_LAYERS, MODELS, hint_layers
from .config import DEFAULT_LR, DEFAULTS, MIMICS


def add_data_args(p):
    p.add_argument("--dataset", choices=("hmdb51", "ucf101", "folder", "synthetic"), default="synthetic",
                   help="dataset layout, as in `fts-edge data check` (default synthetic)")
    p.add_argument("--root", help="video root (synthetic: a folder from `fts-edge data synth`, or omit to render on "
                                  "the fly)")
    p.add_argument("--splits", help="official split files (default --root)")
    p.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="official split (default 1)")
    p.add_argument("--per-class", type=int, help=f"synthetic rendered on the fly: videos per class (default "
                                                 f"{DEFAULTS.per_class})")
    p.add_argument("--num-classes", type=int, help=f"synthetic rendered on the fly: classes (default "
                                                   f"{DEFAULTS.num_classes})")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="horizontal flips in training (default: off where class names pair directions, such as "
                        "swipe_left/swipe_right, which a flip would swap; on otherwise)")


def add_train_args(p, role: str):
    add_data_args(p)
    p.add_argument("--out", default=f"runs/{role}", help=f"run folder (default runs/{role})")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last finished epoch")
    g = p.add_argument_group("clips (the paper: 25 frames, 112 crops)")
    g.add_argument("--frames", type=int)
    g.add_argument("--size", type=int)
    g.add_argument("--resize", type=int, help="short side before cropping (default %(default)s)")
    g.add_argument("--stride", type=int, help="temporal sampling stride (default %(default)s)")
    g.add_argument("--crop", choices=("frame", "person"),
                   help="person: --root is a folder of person tubes from `fts-edge data crops` (for camera --track "
                        "person); default frame")
    g.add_argument("--rgb-illumination", choices=RGB_ILLUMINATION,
                   help="normalize: each RGB frame brought to one mean brightness before the network, in training "
                        "and wherever the model runs, so flicker and exposure changes reach it as no change "
                        "(default %(default)s)")
    g = p.add_argument_group("network")
    g.add_argument("--model", choices=tuple(MODELS),
                   help="r3d_18 (the paper's), resnext3d_18, or causal_r3d_18: the streaming student, one step "
                        "a frame in the camera (default %(default)s)")
    g.add_argument("--width", type=float, help="channel width multiplier (default %(default)s)")
    g.add_argument("--pretrained", metavar="FILE",
                   help="start from a torchvision-format r3d_18 state dict you downloaded (Kinetics-400): every tensor "
                        "but the classifier (and the teacher's 2-channel stem); needs --width 1.0")
    g = p.add_argument_group("optimisation (the paper: SGD lr 0.1, momentum 0.9, weight decay 5e-4)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int, help="global batch, split over torchrun processes (default %(default)s)")
    g.add_argument("--optimizer", choices=("sgd", "adamw"),
                   help="sgd (the paper's, default) or adamw (trains small networks from scratch faster)")
    g.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"peak learning rate (default {DEFAULT_LR['sgd']:g} for sgd, {DEFAULT_LR['adamw']:g} for adamw)",
    )
    g.add_argument("--momentum", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--schedule", choices=("cosine", "step"))
    g.add_argument("--warmup-epochs", type=int)
    g.add_argument("--clip-grad", type=float, help="max gradient norm, 0 for none (default %(default)s)")
    g = p.add_argument_group("flow")
    g.add_argument("--flow-preset", choices=TVL1_PRESETS,
                   help="TVL1 settings: the measured fast preset, or OpenCV's defaults")
    g.add_argument("--flow-camera", choices=FLOW_CAMERA,
                   help="remove the camera's motion from the teacher's flow: its median, or a robust affine fit")
    g.add_argument("--flow-illumination", choices=FLOW_ILLUMINATION,
                   help="take changing light out of the frames before TV-L1: per-frame normalisation, or "
                        "structure-texture decomposition")
    g.add_argument("--augment-light", type=float, help="RGB training: each frame's brightness scaled by up to +-this")
    g.add_argument("--augment-shake", type=float,
                   help="RGB training: a hand-held camera's jitter, RMS pixels a frame at 128 px")
    g.add_argument("--flow-cache", help="folder for flow computed once per video (default <out>/../flow_cache)")
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int)
    g.add_argument("--device", default="cuda" if _cuda() else "cpu", help="cpu or cuda (default: cuda if present)")
    g.add_argument("--workers", type=int,
                   help="DataLoader worker processes (default -1: none on 2 cores or fewer, else half the cores, at "
                        "most 8)")
    g.add_argument("--frame-cache-mb", type=int,
                   help="decoded small videos kept in memory, shared by the workers (default %(default)s MB)")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels_last_3d memory format (default: on CUDA)")
    g.add_argument("--compile", action="store_true", help="torch.compile the training step")
    g.add_argument("--precision", choices=("fp32", "bf16", "fp16", "fp64"),
                   help="how a step computes: fp32 (default); bf16 or fp16 autocast on a GPU (fp16 with a gradient "
                        "scaler); fp64 for numerical checks")
    g.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    g.add_argument("--allow-split-anomalies", action="store_true",
                   help="train although `fts-edge data check` warns about the split (a video in both subsets, "
                        "a class without videos)")
    if role == "student":
        g = p.add_argument_group("distillation")
        g.add_argument("--teacher", help="flow-teacher checkpoint (required unless --alpha 0)")
        g.add_argument("--alpha", type=float,
                       help=f"weight of ||F_rgb - F_flow||^2 (default {DEFAULTS.alpha:g}; 0 = the RGB-only baseline)")
        g.add_argument("--mode", choices=("ftsnet", "mers"),
                       help="ftsnet: CE + alpha*MSE; mers: the pure-mimic ablation (MSE trains the network, CE only "
                            "the classifier)")
        g.add_argument("--mimic", choices=MIMICS,
                       help="mse: the paper's ||F_rgb - F_flow||^2 (default); correlation: the same on features "
                            "z-scored over the batch, which a student cannot lower by outputting the teacher's mean "
                            "(the demo's recipe: docs/experiments.md)")
        g.add_argument("--hint", type=_hint, default=None, metavar="LAYER[,LAYER]",
                       help=f"also mimic these blocks' feature maps ({', '.join(HINT_LAYERS)}; every position, "
                            "same --mimic and --alpha); needs the student at the teacher's --model and --width")
        g.add_argument("--hint-from", metavar="CKPT",
                       help="take the --hint maps from this flow network instead of the teacher (one built as the "
                            "student is: for the streaming student, the teacher's causal copy, whose maps sit on the "
                            "student's frames; the teacher's pooled features stay the mimic's target)")
        g.add_argument("--init-from-teacher", action="store_true",
                       help="start the student from the teacher's weights past the stem (the teacher's stem reads "
                            "flow, not colours: the student's starts fresh); needs the teacher's --model and --width")
        g.add_argument("--init-from", metavar="CKPT",
                       help="start the student from this flow network's weights past the stem instead (a checkpoint of "
                            "train_teacher.py built as the student is): the streaming student (--model causal_r3d_18) "
                            "distilled from a clip teacher starts from a causal copy of that teacher, as the clip "
                            "teacher's blocks do not carry over to causal convolutions")
        g.add_argument("--init-stem-from", metavar="CKPT",
                       help="start the student's stem from this RGB network's (the clip student's: with --init-from a "
                            "causal copy of its teacher, the streaming student starts where the clip student is)")
        g.add_argument("--unlabeled", metavar="DIR",
                       help="also follow the teacher on these videos, which have no labels (any layout, searched "
                            "recursively; the mimic terms only): footage of the place the camera will watch. Its "
                            "flow is computed into the store like the training set's; validation videos are refused")
        g.add_argument("--kd", type=float,
                       help="also learn the teacher's class probabilities, softened at --kd-temperature, on every clip "
                            "(with --unlabeled the classifier then learns from the footage too; default "
                            f"{DEFAULTS.kd:g}: off)")
        g.add_argument("--kd-temperature", type=float,
                       help=f"the temperature of --kd (default {DEFAULTS.kd_temperature:g})")
    if role == "teacher":
        g = p.add_argument_group("following another flow teacher (a causal copy of it for the streaming student)")
        g.add_argument("--teacher", help="flow-teacher checkpoint to follow: CE + alpha * the mimic of its features")
        g.add_argument("--alpha", type=float, help=f"weight of the mimic (default {DEFAULTS.alpha:g})")
        g.add_argument("--mimic", choices=MIMICS, help="mse or correlation (see train_student.py --help)")
        g.add_argument("--init-from-teacher", action="store_true",
                       help="start from the teacher's weights, every one (e.g. --model causal_r3d_18 --teacher "
                            "runs/teacher/best.pt --init-from-teacher --mimic correlation --optimizer adamw --lr 3e-3)")
    p.set_defaults(**train_defaults(p))


def train_defaults(p) -> dict:
    """Every flag's default from TrainConfig's (and its ClipSpec's) fields: a default changes in one
    line, there."""
    dests = {a.dest for a in p._actions}
    return {k: v for k, v in DEFAULTS.settings().items() if k in dests and k not in ("out", "lr", "device", "flip")}


def _hint(value: str) -> str:
    try:
        return ",".join(hint_layers(value))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _cuda() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except Exception:
        return False


def config_from_args(a, role: str):
    """The TrainConfig of the parsed flags: every field the parser has, by name."""
    from .config import DEFAULT_LR, TrainConfig

    kw = {k: getattr(a, k) for k in DEFAULTS.settings() if hasattr(a, k)}
    kw["lr"] = a.lr if a.lr is not None else DEFAULT_LR[a.optimizer]
    kw["role"] = role if role == "teacher" else ("student" if a.alpha > 0 else "rgb")
    if kw.get("crop") == "person":
        from pathlib import Path

        from ..core.errors import UsageError

        if not (a.root and (Path(a.root) / "crops.json").is_file()):
            raise UsageError(f"--crop person: --root {a.root} is not a folder of person tubes; make one with "
                             "fts-edge data crops DATA OUT (and the same --frames and --stride)")
    return TrainConfig.from_settings(kw)


def train_main(role: str, argv=None, doc: str = "") -> int:
    from ..core.parser import Parser

    p = Parser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_args(p, role)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(message)s")
    logging.getLogger("fts_edge").setLevel(logging.INFO)
    def command():
        from ..core.progress import progress
        from .loop import dist_info, fit

        cfg = config_from_args(a, role)
        if (Path(cfg.out) / "last.pt").exists() and not a.resume:
            raise FtsError(f"{cfg.out} already holds a run: pass --resume to continue it, or choose another --out")
        res = fit(cfg, resume=a.resume, progress=progress)
        if dist_info()[1] == 0:
            print(json.dumps(res))

    return guarded(command, interrupted="interrupted; finished epochs are saved, run again with --resume")


def evaluate_main(argv=None, doc: str = "") -> int:
    from ..core.parser import Parser

    p = Parser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rgb", help="RGB-only baseline checkpoint (train_student.py --alpha 0)")
    p.add_argument("--teacher", help="flow-teacher checkpoint")
    p.add_argument("--student", help="distilled student checkpoint")
    add_data_args(p)
    p.add_argument("--out", default="runs/table", help="folder for table.md, table.json, confusion_*.png")
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    def command():
        from ..data.datasets import dataset_index
        from .evaluate import diagnostics_text, evaluate, markdown

        index = dataset_index(a.dataset, a.root, a.splits, a.split) if a.root or a.dataset != "synthetic" else None
        res = evaluate(a.rgb, a.teacher, a.student, index=index, out=a.out, threads=a.threads)
        print(markdown(res))
        diag = diagnostics_text(res)
        if diag:
            print("\n" + diag)
        print(f"\nsaved {a.out}/table.md, table.json and confusion_*.png")

    return guarded(command)
