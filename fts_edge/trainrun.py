"""`fts-edge train DATA`: your own videos to a deployable student in one resumable run.

Stages (each recorded in OUT/state.json when finished, like the demo's): data check -> flow
teacher -> distilled student (and, with --baseline, the RGB-only network on the same budget) ->
table -> export + INT8 -> the camera app on a validation video -> report. The settings are one file, OUT/settings.json; `--config
OUT/settings.json` alone reproduces the run.

Presets: ``small`` is the recipe measured on the motion dataset (docs/experiments.md: 8 frames two
apart at 56 pixels, width 0.125, AdamW, the correlation mimic with a layer3 hint, the student
started from the teacher); ``paper`` is FTSnet's (25 frames, 112 crops, full-width R3D-18, SGD lr
0.1, momentum 0.9, weight decay 5e-4, the paper's MSE mimic).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Dict, Optional

from .core.artifacts import atomic_write_text
from .demo import Demo, DemoConfig
from .core.errors import DatasetError, UsageError

PRESETS = {
    "small": DemoConfig(),
    "paper": DemoConfig(frames=25, size=112, resize=128, stride=1, width=1.0, epochs=30, teacher_epochs=30,
                        optimizer="sgd", lr=0.1, student_lr=0.1, mimic="mse", hint=None, init_from_teacher=False),
}
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
    recipe: DemoConfig = PRESETS["small"]

    def to_dict(self) -> Dict:
        d = dataclasses.asdict(self)
        d["recipe"] = dataclasses.asdict(self.recipe)
        return d

    @classmethod
    def from_file(cls, path) -> "TrainSettings":
        try:
            d = json.loads(Path(path).read_text())
            recipe = DemoConfig(**d.pop("recipe"))
            return cls(**d, recipe=recipe)
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise UsageError(f"--config {path}: not a settings file of fts-edge train ({type(e).__name__}: {e})")


class TrainRun(Demo):
    """The demo's stages on the user's data (no data to write; the camera plays a validation video)."""

    STAGES = 7

    def __init__(self, out: str, settings: TrainSettings, say=print, progress=None):
        self.settings = settings
        super().__init__(out, dataclasses.replace(settings.recipe, seed=settings.seed), say=say, progress=progress,
                         streaming=settings.streaming)
        saved = self.state.get("settings")
        if saved is not None and saved != json.loads(json.dumps(settings.to_dict())):
            from .core.errors import FtsError
            raise FtsError(f"{self.out} holds a run with other settings ({self.out / 'settings.json'}); resume it "
                           "with --config that file, or train into another --out")
        self.state["settings"] = settings.to_dict()
        atomic_write_text(self.out / "settings.json", json.dumps(settings.to_dict(), indent=2))

    def train_cfg(self, role: str, **kw):
        s = self.settings
        cfg = super().train_cfg(role, **kw)
        return dataclasses.replace(cfg, dataset=s.dataset, root=s.root, splits=s.splits, split=s.split, flip=s.flip,
                                   pretrained=s.pretrained if not cfg.init_from_teacher else None)

    def run(self) -> Dict:
        from .train.loop import fit

        n = self.STAGES + self.streaming
        if self.streaming and "streaming" not in self.state.get("stages", {}):
            self.state.get("stages", {}).pop("report", None)  # the report gains the new stage's row
        self.stage(1, "data", self._check, n)
        self.stage(2, "teacher", lambda: fit(self.train_cfg("teacher"), progress=self.progress), n)
        self.stage(3, "student", lambda: {
            "student": fit(self.train_cfg("student", teacher=str(self.out / "teacher" / "last.pt")), progress=self.progress),
            **({"rgb": fit(self.train_cfg("rgb", alpha=0.0), progress=self.progress)} if self.settings.baseline else {})}, n)
        table = self.stage(4, "table", self._table, n)
        if self.streaming:
            self.stage(5, "streaming", self.streaming_student, n)
        deploy = self.stage(5 + self.streaming, "export", self._export, n)
        cam = self.stage(6 + self.streaming, "camera", self._video_camera, n)
        self.stage(n, "report", self._train_report, n)
        return {"table": table, "deploy": deploy, "camera": cam}

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

    def _table(self):
        from .train.evaluate import diagnostics_text, evaluate, markdown

        rgb = str(self.out / "rgb" / "last.pt") if self.settings.baseline else None
        r = evaluate(rgb, str(self.out / "teacher" / "last.pt"), str(self.out / "student" / "last.pt"),
                     out=self.out / "table")
        self.say("\n" + markdown(r) + "\n\n" + (diagnostics_text(r) if rgb else "") + "\n")
        return {"markdown": markdown(r), "rows": [{k: v for k, v in row.items() if k != "confusion"} for row in r["rows"]]}

    def _video_camera(self) -> Dict:
        """The deployable model in the camera app, on the first validation video played as a camera."""
        from .live.camera import CameraSettings, run
        video = self.train_cfg("teacher").index().test[0]
        model = self.live_model()
        lines = self.out / "camera.jsonl"
        summary = run(CameraSettings.make(inputs=[video.path], model=str(model), every=self.cfg.frames,
                                          json_out=str(lines), max_windows=40))
        rows = [json.loads(l) for l in lines.read_text().splitlines()]
        labels = [r["top"][0]["label"] for r in rows if r["type"] == "prediction"]
        name = self.train_cfg("teacher").index().classes[video.label]
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
