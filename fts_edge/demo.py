"""`fts-edge demo`: the whole pipeline on the embedded motion dataset, on a laptop CPU.

Stages (each recorded in DIR/state.json when finished, so an interrupted demo resumes at the first
unfinished one; training itself resumes from its last epoch): data -> teacher -> student and RGB
baseline -> table -> export + INT8 -> camera -> two-stream vs student -> report.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np

from .core.settings import setting
from .pipeline import ADDED_RECIPE, Recipe, RecipeRun

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig(Recipe):
    """The demo: the motion dataset it writes (videos per class, classes, frames and size of each
    video, background texture), the seed, and the recipe it trains with (the ``small`` preset, each
    setting chosen on development seeds: pipeline.Recipe). Changing one refuses older demo folders
    (LEGACY_SETTINGS)."""

    per_class: int = setting(100, lo=1)
    classes: int = setting(10, lo=2, hi=10)
    video_frames: int = setting(16, lo=2)
    video_size: int = setting(64, lo=8, hi=4096)
    seed: int = setting(0, lo=0)
    background: float = setting(1.0, lo=0.0, hi=1.0)

    @property
    def recipe(self) -> Recipe:
        return Recipe(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Recipe)})


# Settings added after demos were first saved, with the value those older demos ran with: a
# state.json without the key is read as having it, so an old folder resumes under the settings
# it was trained with or is refused, never continued under new ones.
LEGACY_SETTINGS = {"mimic": "mse", "hint": None, "init_from_teacher": False, "student_lr": 1e-3}


def saved_config(state: Dict) -> Optional[Dict]:
    """A demo folder's settings as saved in its state.json, keys added since filled in as they ran."""
    cfg = state.get("config")
    return None if cfg is None else {**LEGACY_SETTINGS, **ADDED_RECIPE, **cfg}


def demo_minutes(cfg: DemoConfig) -> float:
    """Rough wall time on a 2-core CPU, from the stages' measured seconds at the defaults (1,000
    videos, `fts-edge demo --seed 0`, 509 s in all: flow cache 110 s, a teacher epoch 7.5 s, an
    epoch of the RGB baseline and the student together 23.5 s, the rest 25 s), scaled by the
    number of videos."""
    scale = cfg.per_class * cfg.classes / 1000.0
    return (25 + scale * (110 + 7.5 * cfg.teacher_epochs + 23.5 * cfg.epochs)) / 60.0


QUICK = DemoConfig(per_class=12, classes=6, video_frames=12, video_size=40, frames=6, size=32, resize=36,
                   epochs=4, teacher_epochs=4, batch_size=8)
STAGES = ("data", "flow", "teacher", "student", "table", "streaming", "export", "camera", "speed", "report")


class Demo(RecipeRun):
    """`fts-edge demo`'s stages: the motion dataset written, the teacher, the student and the RGB
    baseline, the table, (the streaming student), export and INT8, the camera with the teacher
    beside it, two-stream against student speed, the report."""

    baseline = True

    def __init__(self, out: str, cfg: DemoConfig, say: Callable[[str], None] = print, progress=None,
                 video: Optional[str] = None, streaming: bool = False):
        self.cfg, self.recipe, self.seed, self.video, self.streaming = cfg, cfg.recipe, cfg.seed, video, streaming
        super().__init__(out, dataclasses.asdict(cfg), "config", say, progress, STAGES,
                         resume_hint="use the same demo settings",
                         legacy={**LEGACY_SETTINGS, **ADDED_RECIPE})

    @property
    def data(self) -> Dict:
        return {"dataset": "synthetic", "root": str(self.out / "data")}

    def stage_list(self):
        return [("data", self.write_data), ("flow", self.flow_stage), ("teacher", self.teacher_stage),
                ("student", self.students_stage),
                ("table", self.table_stage), *([("streaming", self.streaming_stage)] if self.streaming else []),
                ("export", lambda: self.export_stage(min(128, self.cfg.per_class * self.cfg.classes // 2))),
                ("camera", self._camera), ("speed", self._speed), ("report", self._report)]

    def run(self) -> Dict:
        t0 = time.perf_counter()
        done = self.run_stages()
        return {"table": done["table"], "deploy": done["export"], "camera": done["camera"], "speed": done["speed"],
                "streaming": done.get("streaming"), "seconds": round(time.perf_counter() - t0, 1)}

    def write_data(self):
        from .data.synthetic import write_motion_dataset

        c = self.cfg
        counts = write_motion_dataset(self.out / "data", c.per_class, c.seed, c.classes, c.video_frames,
                                      c.video_size, c.video_size, progress=self.progress,
                                      background=c.background)
        self.say(f"      {counts['train']} training and {counts['val']} validation videos in {self.out / 'data'}")
        return counts

    def _camera(self):
        from .data.sources import SyntheticSource
        from .live.camera import CameraSettings, run

        model = self.live_model()
        lines = self.out / "camera.jsonl"
        src = SyntheticSource("synthetic://", seed=99, size=self.cfg.video_size, max_frames=40 * 3, clip_frames=40)
        summary = run(
            CameraSettings.make(
                model=str(model),
                every=self.cfg.frames,
                json_out=str(lines),
                teacher=str(self.out / "teacher" / "last.pt"),
                flow_dir=str(self.out / "flow"),
            ),
            sources=[src],
        )
        preds = [json.loads(line) for line in lines.read_text().splitlines()]
        preds = [p for p in preds if p["type"] == "prediction"]
        for p in preds[:: max(1, len(preds) // 5)][:5]:
            t = p["top"][0]
            self.say(f"      frame {p['frame']:4d}: {t['label']:22s} {t['score']:.2f}   teacher: "
                     f"{p['teacher']['top'][0]['label']}")
        info = {"model": str(model), "source": "the rendered camera stream (synthetic://, seed 99)",
                "classifications": summary["classifications"],
                "latency_ms": summary["latency_ms"], "teacher_agreement": summary.get("teacher_agreement"),
                "jsonl": str(lines)}
        if self.video:
            vl = self.out / "camera_input.jsonl"
            s2 = run(CameraSettings.make(inputs=[self.video], model=str(model), every=self.cfg.frames, json_out=str(vl),
                                         max_windows=10))
            info["input"] = {"video": self.video, "classifications": s2["classifications"], "jsonl": str(vl)}
            self.say(f"      {self.video}: {s2['classifications']} classifications, JSON lines in {vl}")
        return info

    def _speed(self):
        from .bench.two_stream import two_stream_vs_student
        from .export.onnx import ort_session

        c = self.cfg
        spec = self.clip
        from .data.clips import check_clips
        x = check_clips(spec, None, self.video, n_video=1)[:1]
        fns = {}
        for label, f in (("fp32", "student.onnx"), ("int8", "student.int8.cpu.onnx")):
            p = self.out / "engines" / f
            if p.exists():
                s = ort_session(p, ["CPUExecutionProvider"])
                fns[f"onnxruntime {label}"] = (lambda s=s: s.run(None, {"clip": x}))
        r = two_stream_vs_student(spec, c.classes, self.video, c.width, 5, fns)
        best = max(v for k, v in r["speedup_vs_opencv_two_stream"].items() if k.startswith("student"))
        for k, v in r.items():
            if isinstance(v, dict) and "median_ms" in v:
                self.say(f"      {k:52s} {v['median_ms']:8.1f} ms  {r['speedup_vs_opencv_two_stream'][k]:5.1f}x")
        return {"timings_ms": {k: v["median_ms"] for k, v in r.items() if isinstance(v, dict) and "median_ms" in v},
                "best_student_speedup": best}

    def _report(self):
        import cv2

        from .train.report import write_report

        pics = sorted((self.out / "flow").glob("*.png"))
        pics = pics[:: max(1, len(pics) // 6)][:6]  # six moments spread over the camera run
        if pics:  # a grid of frame | flow pairs, three a row
            imgs = [cv2.imread(str(p)) for p in pics]
            h = min(i.shape[0] for i in imgs)
            tiles = [cv2.resize(i, (i.shape[1] * h // i.shape[0], h)) for i in imgs]
            w = max(t.shape[1] for t in tiles)
            tiles = [np.pad(t, ((0, 0), (0, w - t.shape[1]), (0, 0))) for t in tiles]
            tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % 3)
            strip = np.concatenate([np.concatenate(tiles[i:i + 3], 1) for i in range(0, len(tiles), 3)], 0)
            from .core.artifacts import atomic_write_bytes
            atomic_write_bytes(self.out / "flow_strip.png", cv2.imencode(".png", strip)[1].tobytes())
        path = write_report(self.out, "fts-edge demo report",
                            "The whole pipeline on the procedural motion dataset (classes carried by motion alone).",
                            self.state, self.state["config"], "`fts-edge demo` with these settings "
                            "(`fts-edge demo --seed N` changes the seed).", chance=100.0 / self.cfg.classes)
        return {"report": str(path)}




def noise_points(a: Dict, b: Dict) -> float:
    """Two standard errors of the difference of two top-1 figures (in points), each measured on
    its row's ``n`` clips: differences smaller than this are not evidence of anything."""
    var = sum(r["top1"] / 100 * (1 - r["top1"] / 100) / max(int(r.get("n") or 1), 1) for r in (a, b))
    return 200 * float(np.sqrt(max(var, 0.0)))


def lead_caveat(student: Dict, rgb: Dict) -> str:
    noise = noise_points(student, rgb)
    lead = student["top1"] - rgb["top1"]
    if abs(lead) >= noise:
        return ""
    return (f" (within the noise of {student.get('n')} val clips, +-{noise:.0f} points: no evidence either way "
            "at this size; the full demo's table is the one to read)")


def summary_text(out: Path, res: Dict) -> str:
    t = res["table"]
    rows = {r["method"]: r for r in t["rows"]}
    lead = rows["distilled student"]["top1"] - rows["RGB"]["top1"]
    return "\n".join([
        "", "Summary", "-------",
        t["markdown"], "",
        f"distilled student vs RGB-only baseline (same budget and seed): {lead:+.1f} points top-1"
        f"{lead_caveat(rows['distilled student'], rows['RGB'])}",
        f"distilled student vs two-stream (which needs flow at test time): "
        f"{rows['distilled student']['top1'] - rows['two-stream']['top1']:+.1f} points top-1",
        f"student speed-up over the two-stream pipeline (OpenCV TV-L1 + two networks): "
        f"{res['speed']['best_student_speedup']:.1f}x on one clip",
        *([f"streaming student (one step a frame): top-1 {res['streaming']['top1']:.1f}, "
           f"{res['streaming']['top1'] - res['streaming']['clip_student_top1']:+.1f} points from the clip student"]
          if res.get("streaming") else []), "",
        f"artifacts in {out}: data/, teacher/, student/, rgb/ (checkpoints, metrics.jsonl, curves.png), "
        f"table/, engines/ (student.onnx, student.int8.onnx for TensorRT, student.int8.cpu.onnx), "
        f"camera.jsonl, flow/, report.md", "",
        "next:",
        "  other seeds:       fts-edge demo --seed 1   (docs/results.md has seeds 0-2, with mean and spread)",
        "  train longer:      fts-edge demo --epochs 30   (RGB alone catches up given time on this data: "
        "docs/experiments.md)",
        "  your own videos:   fts-edge train my_videos --preset small --baseline   (one folder per class)",
        "  train on HMDB51:   fts-edge train hmdb51/videos --dataset hmdb51 --splits hmdb51/splits --preset paper",
        f"  on the Jetson:     fts-edge build-engine {out}/engines/student.onnx --int8",
        f"  the camera:        fts-edge camera --input /dev/video0 --model {out}/engines/student.int8.cpu.onnx",
    ])
