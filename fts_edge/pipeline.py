"""A run of stages and a recipe: what `fts-edge demo` and `fts-edge train` are made of.

- ``Recipe``: how the teacher, the student and the RGB baseline are trained (clip geometry, width,
  epochs, optimiser, the distillation): presets ``small`` (the recipe measured on the motion
  dataset, the demo's) and ``paper`` (FTSnet's). ``Recipe.train_config`` turns it into the
  TrainConfig of one role.
- ``StagedRun``: a run folder of named stages, each recorded in OUT/state.json when finished, so a
  run started again resumes at its first unfinished stage (training itself resumes from its last
  epoch). Its settings are saved with it; started again with other settings, it trains on where
  the change only adds work (more epochs, the RGB baseline, the streaming student) and is refused
  otherwise, naming every setting that differs with both values.
- ``RecipeRun``: the stages both commands share (teacher, students, table, streaming student,
  export and INT8). ``demo.Demo`` and ``trainrun.TrainRun`` are two lists of stages over it.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from .core.artifacts import atomic_write_text
from .core.errors import FtsError
from .core.settings import Settings, setting
from .train.config import DEFAULT_LR
from .train.config import DEFAULTS as TRAIN


@dataclass(frozen=True)
class Recipe(Settings):
    """How the networks of a run are trained. The defaults are the recipe chosen on development
    seeds of the motion dataset (docs/experiments.md says how): 8 frames two apart at 56 pixels,
    width 0.125, AdamW for the RGB baseline and the student, the correlation mimic at alpha 10 with
    layer3's map as a hint, the student started from the teacher's blocks at its own peak lr; the
    teacher keeps the paper's SGD."""

    frames: int = setting(8, lo=2)
    size: int = setting(56, lo=8, hi=4096)
    resize: int = setting(64, lo=8, hi=8192)
    stride: int = setting(2, lo=1)
    width: float = setting(0.125, above=0.0)
    epochs: int = setting(14, lo=1, help="epochs of the RGB baseline and of the student (same budget)")
    teacher_epochs: int = setting(6, lo=1, help="epochs of the flow teacher")
    optimizer: str = "adamw"  # of the RGB baseline and the student; the teacher keeps the paper's SGD
    lr: float = setting(1e-3, above=0.0)  # the RGB baseline's peak lr
    batch_size: int = setting(16, lo=1)
    alpha: float = setting(TRAIN.alpha, lo=0.0)
    mimic: str = "correlation"  # the student's mimic loss (train.distill.mimic_term)
    hint: Optional[str] = "layer3"  # also mimic layer3's feature map (train.distill.hint_term)
    init_from_teacher: bool = True  # start from the teacher's blocks past its flow stem
    student_lr: float = setting(3e-3, above=0.0)  # the student's peak lr (each network takes the better of 1e-3, 3e-3)
    # against a hand-held camera and changing light (flow.TVL1's options; RGB augmentation). The
    # teacher's flow has the camera's affine motion removed and each frame pair brought to one
    # brightness: on shaking, flickering video they make the teacher (chance without, 80+ with, over
    # three seeds); on the demo's still camera they change nothing beyond noise (two seeds,
    # docs/experiments.md); they cost no measurable time. The RGB augmentation stays off: it took
    # the student down where the frames already shake.
    flow_camera: str = "affine"  # the teacher's flow: the camera's motion removed (none, median, affine)
    flow_illumination: str = "normalize"  # the teacher's flow: light taken out first (none, structure_texture)
    augment_light: float = setting(0.0, lo=0.0, hi=0.9)  # the RGB networks' frames: brightness +-this
    augment_shake: float = setting(0.0, lo=0.0, hi=20.0)  # the RGB networks' frames: a hand-held camera's jitter
    crop: str = "frame"  # what the networks see: whole frames, or each tracked person's square (data.regions)
    rgb_illumination: str = "none"  # the RGB networks' frames each brought to one brightness (ClipSpec's)

    @property
    def clip(self):
        """The recipe's clip geometry, the ClipSpec every stage of the run reads."""
        from .data.clipspec import ClipSpec

        return ClipSpec(frames=self.frames, size=self.size, resize=self.resize, stride=self.stride, crop=self.crop,
                        rgb_illumination=self.rgb_illumination)

    def train_config(self, role: str, out: Path, data: Dict, seed: int, flow_cache: Optional[str] = None, **kw):
        """The TrainConfig of one role (teacher, rgb, student) under this recipe, on ``data`` (the
        dataset settings: dataset, root, splits, split, flip, pretrained). ``kw`` overrides.

        Args:
            role: teacher, rgb or student.
            out: the run folder (the role's own lies under it).
            data: the dataset settings.
            seed: the run's seed.
            flow_cache: the flow store's folder.

        Returns:
            TrainConfig.
        """
        from .train.config import TrainConfig

        teacher = role == "teacher"
        base = dict(role=role, out=str(out / role), clip=self.clip, width=self.width,
                    epochs=self.teacher_epochs if teacher else self.epochs,
                    optimizer="sgd" if teacher else self.optimizer,
                    lr=DEFAULT_LR["sgd"] if teacher else self.student_lr if role == "student" else self.lr,
                    batch_size=self.batch_size, seed=seed, flow_cache=flow_cache, alpha=self.alpha,
                    mimic=self.mimic if role == "student" else "mse", hint=self.hint if role == "student" else None,
                    init_from_teacher=self.init_from_teacher and role == "student", **data)
        if teacher:
            base.update(flow_camera=self.flow_camera, flow_illumination=self.flow_illumination)
        else:
            base.update(augment_light=self.augment_light, augment_shake=self.augment_shake)
        base.update(kw)
        if base["init_from_teacher"]:  # the teacher's blocks are the start: no other weights beside them
            base["pretrained"] = None
        return TrainConfig(**base)


PRESETS = {
    "small": Recipe(),
    "paper": Recipe(frames=25, size=112, resize=128, stride=1, width=1.0, epochs=30, teacher_epochs=30,
                    optimizer="sgd", lr=DEFAULT_LR["sgd"], student_lr=DEFAULT_LR["sgd"], mimic="mse", hint=None,
                    init_from_teacher=False, flow_camera="none", flow_illumination="none"),
}

# Changes that only add work to a run that has finished stages: the stage to redo from (more epochs
# of a network resume its training from its last epoch; a baseline or a streaming student is added).
# Recipe settings added since runs were first saved, and the value those runs ran with
ADDED_RECIPE = {"flow_camera": "none", "flow_illumination": "none", "augment_light": 0.0, "augment_shake": 0.0,
                "crop": "frame", "rgb_illumination": "none"}

GROWS = {"teacher_epochs": "teacher", "epochs": "student", "baseline": "student", "streaming": "streaming"}
# Networks learnt from another's outputs: more teacher epochs make them stale, so their folders are
# set aside (renamed, never deleted) and they train again from the start rather than resume.
DISTILLED_FROM = {"teacher": ("student", "causal_flow", "streaming")}


def flat(d: Dict, prefix: str = "") -> Dict:
    """A settings dict with nested dicts as dotted keys (``recipe.lr``)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class StagedRun:
    """A run folder of named stages (OUT/state.json) with its settings (``state[key]``)."""

    def __init__(self, out, settings: Dict, key: str, say: Callable[[str], None] = print, progress=None,
                 order: Tuple[str, ...] = (), resume_hint: str = "", legacy: Optional[Dict] = None):
        self.out, self.say, self.progress = Path(out), say, progress
        if self.out.exists() and not self.out.is_dir():
            raise FtsError(f"{self.out}: is a file, not a run folder")
        self.out.mkdir(parents=True, exist_ok=True)
        self.state_path = self.out / "state.json"
        self.state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        saved = self.state.get(key)
        if saved is not None:
            saved = {**flat(legacy or {}), **flat(saved)}  # keys added since it was saved: read as what it ran with
            self._reconcile(saved, flat(json.loads(json.dumps(settings))), order, resume_hint)
        self.state[key] = settings

    def _reconcile(self, saved: Dict, now: Dict, order: Tuple[str, ...], resume_hint: str) -> None:
        """Train on where the new settings only add work; refuse, naming each difference, otherwise."""
        diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        if not diff:
            return
        leaf = {k: k.rsplit(".", 1)[-1] for k in diff}
        grows = [k for k in diff if leaf[k] in GROWS and _more(saved.get(k), now.get(k))]
        shown = ", ".join(f"{k} {json.dumps(saved.get(k))} (now {json.dumps(now.get(k))})"
                          for k in diff if k not in grows)
        if shown:
            fewer = [k for k in diff if leaf[k] in ("epochs", "teacher_epochs") and k not in grows]
            why = (f"; {', '.join(fewer)} can only grow: a finished run does not train backwards" if fewer else "")
            raise FtsError(f"{self.out} holds a run with other settings: {shown}{why}; "
                           f"{resume_hint or 'resume it with the same settings'}, "
                           "or train into another --out")
        stages = self.state.get("stages", {})
        redo = [GROWS[leaf[k]] for k in grows]
        first = min((order.index(s) for s in redo if s in order), default=None)
        if first is not None:
            dropped = [s for s in order[first:] if stages.pop(s, None) is not None]
            stale = [d for s in redo for d in DISTILLED_FROM.get(s, ()) if (self.out / d).is_dir()]
            for d in stale:
                aside = self.out / f"{d}.before-{'-'.join(leaf[k] for k in grows)}"
                if aside.exists():
                    shutil.rmtree(aside)
                (self.out / d).rename(aside)
            if stale:
                self.say(f"{self.out}: distilled from the shorter-trained teacher, set aside: "
                         + ", ".join(f"{d}/ -> {d}.before-{'-'.join(leaf[k] for k in grows)}/" for d in stale))
            if dropped:
                self.say(f"{self.out}: " + ", ".join(f"{k} {json.dumps(saved.get(k))} -> {json.dumps(now.get(k))}"
                                                   for k in grows) + f": training on (stages {', '.join(dropped)} "
                                                                     "again)")

    def _done(self, stage: str, info: Dict) -> None:
        self.state.setdefault("stages", {})[stage] = info
        atomic_write_text(self.state_path, json.dumps(self.state, indent=2))

    def stage(self, n: int, name: str, fn: Callable[[], Dict], total: int) -> Dict:
        done = self.state.get("stages", {}).get(name)
        if done is not None:
            self.say(f"[{n}/{total}] {name}: already done (resumed)")
            return done
        self.say(f"[{n}/{total}] {name} ...")
        t = time.perf_counter()
        info = fn()
        info["seconds"] = round(time.perf_counter() - t, 1)
        self._done(name, info)
        return info


def _more(before, after) -> bool:
    if isinstance(before, bool) or isinstance(after, bool):
        return before in (False, None) and after is True
    return isinstance(before, (int, float)) and isinstance(after, (int, float)) and after > before


class RecipeRun(StagedRun):
    """The stages a recipe's run shares: the teacher, the students, the table, the streaming
    student, export and INT8. Subclasses give ``data`` (the dataset settings), ``seed`` and
    ``baseline`` and list their stages in ``run``."""

    recipe: Recipe
    seed: int = 0
    baseline: bool = True
    streaming: bool = False

    @property
    def data(self) -> Dict:
        raise NotImplementedError

    @property
    def clip(self):
        return self.recipe.clip

    def train_cfg(self, role: str, **kw):
        return self.recipe.train_config(role, self.out, self.data, self.seed, str(self.out / "flow_cache"), **kw)

    def live_model(self) -> Path:
        """The model this run's camera stage plays: the CPU INT8 ONNX where calibration made one."""
        int8 = self.out / "engines" / "student.int8.cpu.onnx"
        return int8 if int8.exists() else self.out / "engines" / "student.onnx"

    # -- the shared stages ------------------------------------------------------------------------
    def flow_stage(self) -> Dict:
        """The flow store of the run's videos, computed once before any network trains on it."""
        from .train.loop import precompute_flow

        rep = precompute_flow(self.train_cfg("teacher"), self.progress)
        self.say(f"      {rep['videos']} videos' flow in {rep['store']} ({rep['bytes'] / 2**20:.0f} MB)")
        return {k: rep[k] for k in ("store", "videos", "bytes", "unreadable")}

    def teacher_stage(self) -> Dict:
        from .train.loop import fit

        return fit(self.train_cfg("teacher"), progress=self.progress)

    def students_stage(self) -> Dict:
        from .train.loop import fit

        out = {"student": fit(self.train_cfg("student", teacher=str(self.out / "teacher" / "last.pt")),
                              progress=self.progress)}
        if self.baseline:
            out["rgb"] = fit(self.train_cfg("rgb", alpha=0.0), progress=self.progress)
        return out

    def table_stage(self) -> Dict:
        from .train.evaluate import diagnostics_text, evaluate, markdown

        rgb = str(self.out / "rgb" / "last.pt") if self.baseline else None
        r = evaluate(rgb, str(self.out / "teacher" / "last.pt"), str(self.out / "student" / "last.pt"),
                     out=self.out / "table")
        self.say("\n" + markdown(r) + "\n\n" + (diagnostics_text(r) if rgb else "") + "\n")
        return {
            "markdown": markdown(r),
            "rows": [{k: v for k, v in row.items() if k != "confusion"} for row in r["rows"]],
            "diagnostics": r.get("diagnostics"),
        }

    def streaming_cfgs(self):
        """The streaming stage's two trainings: the teacher's causal copy (out causal_flow/) and the
        streaming student (out streaming/)."""
        r, causal, teacher = self.recipe, "causal_r3d_18", str(self.out / "teacher" / "last.pt")
        copy = dataclasses.replace(self.train_cfg("teacher", teacher=teacher, mimic=r.mimic, init_from_teacher=True),
                                   model=causal, out=str(self.out / "causal_flow"), optimizer=r.optimizer,
                                   lr=r.student_lr, pretrained=None)
        student = self.train_cfg("student", teacher=teacher, init_from_teacher=False)
        return copy, dataclasses.replace(student, model=causal, out=str(self.out / "streaming"),
                                         init_from=copy.out + "/last.pt",
                                         hint_from=copy.out + "/last.pt" if student.hint else None,
                                         init_stem_from=str(self.out / "student" / "last.pt"), pretrained=None)

    def streaming_stage(self) -> Dict:
        """The streaming student (causal_r3d_18), distilled from the clip student's teacher with the
        student's loss, optimiser and epochs, scored on the same validation clips, and its stage
        graphs exported. It starts from the teacher copied into causal layers (a clip network's
        blocks do not carry over to causal convolutions) and the clip student's stem, and follows
        the copy's hint maps (docs/experiments.md)."""
        from .export.onnx import export
        from .train.evaluate import evaluate
        from .train.loop import fit

        copy, cfg = self.streaming_cfgs()
        start = fit(copy, progress=self.progress)
        fit(cfg, progress=self.progress)
        row = evaluate(None, None, str(self.out / "streaming" / "last.pt"))["rows"][0]
        rows = {r["method"]: r for r in self.state["stages"]["table"]["rows"]}
        exp = export(self.out / "streaming" / "last.pt", self.out / "engines" / "streaming.onnx")
        info = {
            "top1": row["top1"],
            "n": row["n"],
            "epochs": cfg.epochs,
            "causal_flow_top1": start.get("last_top1", start.get("best_top1")),
            "clip_student_top1": rows["distilled student"]["top1"],
            "rgb_top1": rows["RGB"]["top1"] if "RGB" in rows else None,
            "onnx": exp["onnx"],
            "parity": exp["parity"],
        }
        self.say(
            f"      streaming student: top-1 {info['top1']:.1f} (same teacher; clip student "
            f"{info['clip_student_top1']:.1f}"
            + (f", RGB {info['rgb_top1']:.1f}" if info["rgb_top1"] is not None else "")
            + f"; started from the teacher's causal copy, {info['causal_flow_top1']:.1f} on flow); stage graphs "
            f"{exp['onnx']} and three beside it, parity with the clip forward {exp['parity']['max_rel_diff']:.1e}"
        )
        return info

    def export_stage(self, calib_clips: int) -> Dict:
        """The student to ONNX, and its INT8 models checked against fp32 (TensorRT's engine where
        TensorRT is)."""
        from .core.errors import TensorRTUnavailable
        from .device.build import BuildSettings, build_engine
        from .device.quantize import int8_path
        from .export.onnx import export

        exp = export(self.out / "student" / "last.pt", self.out / "engines" / "student.onnx")
        p = exp["parity"]
        self.say(f"      ONNX {exp['onnx']}: parity with PyTorch on {p['clips']} real clips: top-1 "
                 f"{p['top1_agreement']:.0%}, max rel diff {p['max_rel_diff']:.1e}")
        info = {"onnx": exp["onnx"], "parity": p}
        try:
            build_engine(exp["onnx"], BuildSettings(int8=True, calib_clips=calib_clips, min_agreement=0.0),
                         say=lambda m: self.say("      " + m), progress=self.progress)
        except TensorRTUnavailable as e:
            self.say(f"      engine: {e}")
            info["engine"] = str(e)
        int8 = {}
        for flavor in ("tensorrt", "cpu"):
            meta_p = Path(str(int8_path(exp["onnx"], flavor)) + ".json")
            if meta_p.exists():
                q = json.loads(meta_p.read_text())["quantization"]
                int8[flavor] = {"onnx": q["int8_onnx"], "check": q["check"]}
        info["int8"] = int8
        return info

    def stage_list(self) -> List[Tuple[str, Callable[[], Dict]]]:
        raise NotImplementedError

    def run_stages(self) -> Dict[str, Dict]:
        """Every stage of ``stage_list`` in order (finished ones resumed): their records by name."""
        stages = self.stage_list()
        if self.streaming and "streaming" not in self.state.get("stages", {}):
            self.state.get("stages", {}).pop("report", None)  # the report gains the new stage's row
        return {name: self.stage(i, name, fn, len(stages)) for i, (name, fn) in enumerate(stages, 1)}
