"""`fts-edge train DATA`: your own videos to a deployable student in one resumable run.

Stages (each recorded in OUT/state.json when finished, like the demo's): data check -> flow
teacher -> distilled student (and, with --baseline, the RGB-only network on the same budget) ->
table -> export + INT8 -> report. The settings are one file, OUT/settings.json; `--config
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

from .artifacts import atomic_write_text
from .demo import Demo, DemoConfig
from .errors import DatasetError, UsageError

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
    """The demo's stages on the user's data (no data to write, no rendered camera or speed stage)."""

    STAGES = 6

    def __init__(self, out: str, settings: TrainSettings, say=print, progress=None):
        self.settings = settings
        super().__init__(out, dataclasses.replace(settings.recipe, seed=settings.seed), say=say, progress=progress)
        saved = self.state.get("settings")
        if saved is not None and saved != json.loads(json.dumps(settings.to_dict())):
            from .errors import FtsError
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
        from .training import fit

        n = self.STAGES
        self.stage(1, "data", self._check, n)
        self.stage(2, "teacher", lambda: fit(self.train_cfg("teacher"), progress=self.progress), n)
        self.stage(3, "student", lambda: {
            "student": fit(self.train_cfg("student", teacher=str(self.out / "teacher" / "last.pt")), progress=self.progress),
            **({"rgb": fit(self.train_cfg("rgb", alpha=0.0), progress=self.progress)} if self.settings.baseline else {})}, n)
        table = self.stage(4, "table", self._table, n)
        deploy = self.stage(5, "export", self._export, n)
        self.stage(6, "report", self._train_report, n)
        return {"table": table, "deploy": deploy}

    def _check(self) -> Dict:
        from .datasets import check_dataset

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
        from .evaluate import diagnostics_text, evaluate, markdown

        rgb = str(self.out / "rgb" / "last.pt") if self.settings.baseline else None
        r = evaluate(rgb, str(self.out / "teacher" / "last.pt"), str(self.out / "student" / "last.pt"),
                     out=self.out / "table")
        self.say("\n" + markdown(r) + "\n\n" + (diagnostics_text(r) if rgb else "") + "\n")
        return {"markdown": markdown(r), "rows": [{k: v for k, v in row.items() if k != "confusion"} for row in r["rows"]]}

    def _train_report(self) -> Dict:
        st = self.state["stages"]
        d = st["export"]
        lines = ["# fts-edge train report", "", f"Data: {self.settings.dataset} at {self.settings.root} (split "
                 f"{self.settings.split}, seed {self.settings.seed}): {st['data']['train']} training and "
                 f"{st['data']['test']} validation videos.", "",
                 "Settings: `settings.json` (`fts-edge train --config settings.json` reproduces the run).", "",
                 "## Table (validation split)", "", st["table"]["markdown"], "",
                 "## Deployable student", "", f"- ONNX: `{d['onnx']}` (parity with PyTorch: top-1 "
                 f"{d['parity']['top1_agreement']:.0%} on {d['parity']['clips']} clips)"]
        for flavor, q in d.get("int8", {}).items():
            lines.append(f"- INT8 ({flavor}): `{q['onnx']}`, top-1 agreement with fp32 {q['check']['top1_agreement']:.1%}")
        lines += ["", "## Training curves", ""] + [f"![{r}]({r}/curves.png)" for r in ("teacher", "student", "rgb")
                                                    if (self.out / r / "curves.png").exists()]
        atomic_write_text(self.out / "report.md", "\n".join(lines) + "\n")
        return {"report": str(self.out / "report.md")}
