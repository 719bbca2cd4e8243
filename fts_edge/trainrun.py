"""`fts-edge train DATA`: your own videos to a deployable student in one resumable run.

Stages (each recorded in OUT/state.json when finished, like the demo's): data check -> flow
teacher -> distilled student (and, with --baseline, the RGB-only network on the same budget) ->
table -> export + INT8 -> the camera app on a validation video -> report. The settings are one
file, OUT/settings.json; `--config OUT/settings.json` alone reproduces or resumes the run. The
recipe is a preset of pipeline.Recipe: ``small`` (the demo's, measured on the motion dataset) or
``paper`` (FTSnet's).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Dict, Optional

from .core.artifacts import atomic_write_text
from .core.errors import DatasetError, UsageError
from .pipeline import ADDED_RECIPE, PRESETS, Recipe, RecipeRun
from .train.config import DEFAULTS as TRAIN

DATA_KEYS = ("dataset", "root", "splits", "split", "seed", "flip", "pretrained")


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Everything that defines a `fts-edge train` run: the data and the recipe."""

    dataset: str = "folder"
    root: Optional[str] = None
    splits: Optional[str] = None
    split: int = 1
    seed: int = 0
    flip: Optional[bool] = None
    pretrained: Optional[str] = None
    baseline: bool = False
    streaming: bool = False  # also distil the streaming student (causal_r3d_18) from the same teacher
    recipe: Recipe = PRESETS["small"]
    detector: str = "hog"  # --crop person: the person detector that finds the people to crop
    unlabeled: Optional[str] = None  # videos without labels the students also follow the teacher on
    kd: float = TRAIN.kd  # the students also learn the teacher's softened class probabilities (train.distill.kd_term)

    def to_dict(self) -> Dict:
        d = dataclasses.asdict(self)
        d["recipe"] = dataclasses.asdict(self.recipe)
        return d

    @classmethod
    def from_dict(cls, d: Dict, where: str = "settings") -> "TrainSettings":
        try:
            d = dict(d)
            recipe = Recipe(**d.pop("recipe"))
            return cls(**d, recipe=recipe)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise UsageError(f"{where}: not a settings file of fts-edge train ({type(e).__name__}: {e})") from None

    @classmethod
    def from_file(cls, path) -> "TrainSettings":
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise UsageError(f"--config {path}: not a settings file of fts-edge train "
                             f"({type(e).__name__}: {e})") from None
        if not isinstance(d, dict):
            raise UsageError(f"--config {path}: not a settings file of fts-edge train (not a JSON object)")
        return cls.from_dict(d, f"--config {path}")


STAGES = ("crops", "data", "flow", "teacher", "student", "table", "streaming", "export", "camera", "report")


class TrainRun(RecipeRun):
    """`fts-edge train`'s stages over the user's data: the data check, the teacher, the student
    (and the RGB baseline), the table, (the streaming student), export and INT8, the camera on a
    validation video, the report."""

    def __init__(self, out: str, settings: TrainSettings, say=print, progress=None):
        self.settings, self.recipe, self.seed = settings, settings.recipe, settings.seed
        self.baseline, self.streaming = settings.baseline, settings.streaming
        super().__init__(out, settings.to_dict(), "settings", say, progress, STAGES,
                         resume_hint=f"resume it with its settings (fts-edge train --config "
                                     f"{Path(out) / 'settings.json'})",
                         legacy={"recipe": ADDED_RECIPE, "detector": "hog", "unlabeled": None, "kd": 0.0})
        atomic_write_text(self.out / "settings.json", json.dumps(settings.to_dict(), indent=2))

    @property
    def cfg(self) -> Recipe:
        return self.recipe

    def train_cfg(self, role: str, **kw):
        """A role's TrainConfig; the students (clip and streaming) also follow the teacher on the
        --unlabeled videos, and its class probabilities with --kd."""
        if role == "student" and kw.get("alpha", 1.0) > 0:
            if self.settings.unlabeled:
                kw.setdefault("unlabeled", self.settings.unlabeled)
            if self.settings.kd > 0:
                kw.setdefault("kd", self.settings.kd)
        return super().train_cfg(role, **kw)

    @property
    def data(self) -> Dict:
        s = self.settings
        if self.recipe.crop == "person":  # the crops of the people in the user's videos, cut once
            return {"dataset": "folder", "root": str(self.out / "crops"), "splits": None, "split": 1,
                    "flip": s.flip, "pretrained": s.pretrained}
        return {"dataset": s.dataset, "root": s.root, "splits": s.splits, "split": s.split, "flip": s.flip,
                "pretrained": s.pretrained}

    def _crops(self) -> Dict:
        """--crop person: every training and validation video's person cut out as a video of its own
        (train.crops), from the boxes beside a scene folder's videos or by the detector and ByteTrack."""
        from .train.crops import make_crops

        s, side = self.settings, self.recipe.resize
        rep = make_crops(s.root, self.out / "crops", self.recipe.clip, s.dataset, s.splits, s.split, s.seed,
                         s.detector, self.progress)
        self.say(f"      {rep['train']} training and {rep['val']} validation tubes ({side}x{side}, "
                 f"{self.recipe.clip.span} frames) from {rep['from']}"
                 + (f"; {len(rep['untracked'])} videos without a person left out" if rep["untracked"] else ""))
        return {k: rep[k] for k in ("train", "val", "from", "untracked")}

    def stage_list(self):
        crops = [("crops", self._crops)] if self.recipe.crop == "person" else []
        return [*crops, ("data", self._check), ("flow", self.flow_stage), ("teacher", self.teacher_stage),
                ("student", self.students_stage),
                ("table", self.table_stage), *([("streaming", self.streaming_stage)] if self.streaming else []),
                ("export", lambda: self.export_stage(128)), ("camera", self._video_camera),
                ("report", self._train_report)]

    def run(self) -> Dict:
        done = self.run_stages()
        return {"table": done["table"], "deploy": done["export"], "camera": done["camera"]}

    def _check(self) -> Dict:
        from .data.datasets import check_dataset

        idx = self.train_cfg("teacher").index()
        rep = check_dataset(idx, progress=self.progress)
        if not rep["train"] or not rep["test"]:
            raise DatasetError(f"{self.settings.root}: {rep['train']} readable training and {rep['test']} validation "
                               "videos; `fts-edge data check` lists what is wrong")
        self.say(f"      {len(idx.classes)} classes, {rep['train']} training and {rep['test']} validation videos, "
                 f"{len(rep['unreadable'])} unreadable; flips {'on' if idx.flip else 'off'}")
        for w in idx.anomalies[:5]:
            self.say(f"      warning: {w}")
        return {k: rep[k] for k in ("classes", "train", "test", "unreadable")}

    def _video_camera(self) -> Dict:
        """The deployable model in the camera app, on the first validation video played as a camera."""
        from .live.camera import CameraSettings, run
        index = self.train_cfg("teacher").index()  # read once: a folder walk, or the split files
        video, classes = index.test[0], index.classes
        model = self.live_model()
        lines = self.out / "camera.jsonl"
        track = None
        if self.recipe.crop == "person":  # the model reads tracked people: the camera tracks them in a user's video
            from .train.crops import is_scene_folder, source_index

            track = "person"
            if not is_scene_folder(self.settings.root):
                s = self.settings
                source = source_index(s.root, s.dataset, s.splits, s.split, s.seed)
                video, classes = source.test[0], source.classes
        summary = run(CameraSettings.make(inputs=[video.path], model=str(model), every=self.cfg.frames,
                                          json_out=str(lines), max_windows=40, track=track,
                                          detector=self.settings.detector))
        rows = [json.loads(line) for line in lines.read_text().splitlines()]
        labels = [r["top"][0]["label"] for r in rows if r["type"] == "prediction"]
        name = classes[video.label]
        acc = sum(lab == name for lab in labels) / len(labels) if labels else None
        self.say(f"      {Path(video.path).name} ({name}): {summary['classifications']} classifications, "
                 f"{acc:.0%} of them {name}" if acc is not None else f"      {video.path}: no classification")
        return {"model": str(model), "source": f"validation video {Path(video.path).name} (class {name})",
                "classifications": summary["classifications"], "latency_ms": summary["latency_ms"],
                "accuracy": acc, "jsonl": str(lines)}

    def _train_report(self) -> Dict:
        from .train.report import write_report

        s = self.settings
        intro = (f"`fts-edge train` on {s.dataset} data at `{s.root}` (split {s.split}): a flow teacher, the student "
                 "distilled from it" + (" and the RGB-only baseline on the same budget" if s.baseline else "") + ".")
        path = write_report(self.out, "fts-edge train report", intro, self.state, s.to_dict(),
                            "`settings.json` holds them; `fts-edge train --config settings.json` reproduces the run.",
                            chance=100.0 / self.state["stages"]["data"]["classes"])
        return {"report": str(path)}
