"""`fts-edge demo`: the whole pipeline on the embedded motion dataset, on a laptop CPU.

Stages (each recorded in DIR/state.json when finished, so an interrupted demo resumes at the first
unfinished one; training itself resumes from its last epoch): data -> teacher -> student and RGB
baseline -> table -> export + INT8 -> camera -> two-stream vs student -> report.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np

from .core.artifacts import atomic_write_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    """The demo's settings, each chosen on development seeds (docs/experiments.md says how): frames
    two apart, AdamW for the small RGB network and the student, 75 training clips per class, the
    correlation mimic at alpha 10 with layer3's map as a hint, the student started from the
    teacher's blocks at its own peak lr. Changing one refuses older demo folders (LEGACY_SETTINGS)."""
    per_class: int = 100
    classes: int = 10
    video_frames: int = 16
    video_size: int = 64
    frames: int = 8
    size: int = 56
    resize: int = 64
    stride: int = 2
    width: float = 0.125
    epochs: int = 14  # the RGB baseline and the student (same budget)
    teacher_epochs: int = 6
    optimizer: str = "adamw"  # of the RGB baseline and the student; the teacher keeps the paper's SGD
    lr: float = 1e-3  # the RGB baseline's peak lr
    batch_size: int = 16
    seed: int = 0
    alpha: float = 10.0
    background: float = 1.0
    mimic: str = "correlation"  # the student's mimic loss (distill.mimic_term); see distill.DEFAULT_ALPHA
    hint: Optional[str] = "layer3"  # also mimic layer3's feature map (distill.hint_term)
    init_from_teacher: bool = True  # start from the teacher's blocks past its flow stem (training.init_from_teacher)
    student_lr: float = 3e-3  # the student's peak lr (each network takes the better of 1e-3 and 3e-3)


# Settings added after demos were first saved, with the value those older demos ran with: a
# state.json without the key is read as having it, so an old folder resumes under the settings
# it was trained with or is refused, never continued under new ones.
LEGACY_SETTINGS = {"mimic": "mse", "hint": None, "init_from_teacher": False, "student_lr": 1e-3}


def saved_config(state: Dict) -> Optional[Dict]:
    """A demo folder's settings as saved in its state.json, keys added since filled in as they ran."""
    cfg = state.get("config")
    return None if cfg is None else {**LEGACY_SETTINGS, **cfg}


def demo_minutes(cfg: DemoConfig) -> float:
    """Rough wall time on a 2-core CPU, from the stages' measured seconds at the defaults (1,000
    videos, `fts-edge demo --seed 0`, 509 s in all: flow cache 110 s, a teacher epoch 7.5 s, an
    epoch of the RGB baseline and the student together 23.5 s, the rest 25 s), scaled by the
    number of videos."""
    scale = cfg.per_class * cfg.classes / 1000.0
    return (25 + scale * (110 + 7.5 * cfg.teacher_epochs + 23.5 * cfg.epochs)) / 60.0


QUICK = DemoConfig(per_class=12, classes=6, video_frames=12, video_size=40, frames=6, size=32, resize=36,
                   epochs=4, teacher_epochs=4, batch_size=8)


class Demo:
    def __init__(self, out: str, cfg: DemoConfig, say: Callable[[str], None] = print, progress=None,
                 video: Optional[str] = None, streaming: bool = False):
        self.out, self.cfg, self.say, self.progress, self.video = Path(out), cfg, say, progress, video
        self.streaming = streaming  # also distil the streaming student (causal_r3d_18) from the same teacher
        self.out.mkdir(parents=True, exist_ok=True)
        self.state_path = self.out / "state.json"
        self.state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        if saved_config(self.state) not in (None, cfg.__dict__):
            from .core.errors import FtsError
            raise FtsError(f"{self.out} holds a run with other settings (its state.json); use another --out or delete it")
        self.state["config"] = cfg.__dict__

    @property
    def clip(self):
        """The recipe's clip geometry, the ClipSpec every stage of the run reads."""
        from .data.clipspec import ClipSpec

        c = self.cfg
        return ClipSpec(frames=c.frames, size=c.size, resize=c.resize, stride=c.stride)

    def live_model(self) -> Path:
        """The model this run's camera stage plays: the CPU INT8 ONNX where calibration made one."""
        int8 = self.out / "engines" / "student.int8.cpu.onnx"
        return int8 if int8.exists() else self.out / "engines" / "student.onnx"

    # -- bookkeeping ---------------------------------------------------------------------------
    def _done(self, stage: str, info: Dict):
        self.state.setdefault("stages", {})[stage] = info
        atomic_write_text(self.state_path, json.dumps(self.state, indent=2))

    def stage(self, n: int, name: str, fn: Callable[[], Dict], total: int = 8) -> Dict:
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

    def train_cfg(self, role: str, **kw):
        from .train.loop import TrainConfig

        c = self.cfg
        teacher = role == "teacher"
        return TrainConfig(role=role, out=str(self.out / role), dataset="synthetic", root=str(self.out / "data"),
                           clip=self.clip, width=c.width,
                           epochs=c.teacher_epochs if teacher else c.epochs,
                           optimizer="sgd" if teacher else c.optimizer,
                           lr=0.1 if teacher else c.student_lr if role == "student" else c.lr,
                           batch_size=c.batch_size, seed=c.seed, flow_cache=str(self.out / "flow_cache"),
                           alpha=kw.pop("alpha", c.alpha), mimic=kw.pop("mimic", c.mimic if role == "student" else "mse"),
                           hint=kw.pop("hint", c.hint if role == "student" else None),
                           init_from_teacher=kw.pop("init_from_teacher", c.init_from_teacher and role == "student"), **kw)

    # -- the stages ---------------------------------------------------------------------------
    def run(self) -> Dict:
        from .train.loop import fit

        t0 = time.perf_counter()
        n = 8 + self.streaming
        if self.streaming and "streaming" not in self.state.get("stages", {}):
            self.state.get("stages", {}).pop("report", None)  # the report gains the new stage's row
        self.stage(1, "data", lambda: self.write_data(), n)
        self.stage(2, "teacher", lambda: fit(self.train_cfg("teacher"), progress=self.progress), n)
        self.stage(3, "student", lambda: {
            "student": fit(self.train_cfg("student", teacher=str(self.out / "teacher" / "last.pt")), progress=self.progress),
            "rgb": fit(self.train_cfg("rgb", alpha=0.0), progress=self.progress)}, n)
        table = self.stage(4, "table", self._table, n)
        stream = self.stage(5, "streaming", self.streaming_student, n) if self.streaming else None
        deploy = self.stage(5 + self.streaming, "export", self._export, n)
        cam = self.stage(6 + self.streaming, "camera", self._camera, n)
        speed = self.stage(7 + self.streaming, "speed", self._speed, n)
        self.stage(n, "report", self._report, n)
        return {"table": table, "deploy": deploy, "camera": cam, "speed": speed, "streaming": stream,
                "seconds": round(time.perf_counter() - t0, 1)}

    def streaming_cfgs(self):
        """The streaming stage's two trainings: the teacher's causal copy (out causal_flow/) and the
        streaming student (out streaming/)."""
        import dataclasses

        c, causal, teacher = self.cfg, "causal_r3d_18", str(self.out / "teacher" / "last.pt")
        copy = dataclasses.replace(self.train_cfg("teacher", teacher=teacher, mimic=c.mimic, init_from_teacher=True),
                                   model=causal, out=str(self.out / "causal_flow"), optimizer=c.optimizer,
                                   lr=c.student_lr, pretrained=None)
        student = self.train_cfg("student", teacher=teacher, init_from_teacher=False)
        return copy, dataclasses.replace(student, model=causal, out=str(self.out / "streaming"), init_from=copy.out + "/last.pt",
                                         hint_from=copy.out + "/last.pt" if student.hint else None,
                                         init_stem_from=str(self.out / "student" / "last.pt"), pretrained=None)

    def streaming_student(self) -> Dict:
        """The streaming student (causal_r3d_18), distilled from the clip student's teacher with the
        student's loss, optimiser and epochs, scored on the same validation clips, and its stage
        graphs exported. A clip network's blocks do not carry over to causal convolutions,
        and a causal student that does not start from causal blocks stays at chance for many epochs
        (docs/experiments.md); so first the teacher is copied into causal layers (a causal flow
        network started from its weights and trained to follow it on the same cached flow, with the
        student's optimiser), and the streaming student starts from that copy's blocks and the clip
        student's stem. Where the clip student follows a hint map, the streaming student follows the
        copy's: the teacher's layer3 outputs sit on other frames than a causal network's."""
        from .export.onnx import export
        from .train.evaluate import evaluate
        from .train.loop import fit

        copy, cfg = self.streaming_cfgs()
        start = fit(copy, progress=self.progress)
        fit(cfg, progress=self.progress)
        row = evaluate(None, None, str(self.out / "streaming" / "last.pt"))["rows"][0]
        rows = {r["method"]: r for r in self.state["stages"]["table"]["rows"]}
        exp = export(self.out / "streaming" / "last.pt", self.out / "engines" / "streaming.onnx")
        info = {"top1": row["top1"], "n": row["n"], "epochs": cfg.epochs,
                "causal_flow_top1": start.get("last_top1", start.get("best_top1")),
                "clip_student_top1": rows["distilled student"]["top1"],
                "rgb_top1": rows["RGB"]["top1"] if "RGB" in rows else None, "onnx": exp["onnx"], "parity": exp["parity"]}
        self.say(f"      streaming student: top-1 {info['top1']:.1f} (same teacher; clip student "
                 f"{info['clip_student_top1']:.1f}" + (f", RGB {info['rgb_top1']:.1f}" if info["rgb_top1"] is not None else "")
                 + f"; started from the teacher's causal copy, {info['causal_flow_top1']:.1f} on flow); stage graphs "
                 f"{exp['onnx']} and three beside it, parity with the clip forward {exp['parity']['max_rel_diff']:.1e}")
        return info

    def write_data(self):
        from .data.synthetic import write_motion_dataset

        c = self.cfg
        counts = write_motion_dataset(self.out / "data", c.per_class, c.seed, c.classes, c.video_frames,
                                      c.video_size, c.video_size, progress=self.progress,
                                      background=c.background)
        self.say(f"      {counts['train']} training and {counts['val']} validation videos in {self.out / 'data'}")
        return counts

    def _table(self):
        from .train.evaluate import diagnostics_text, evaluate, markdown

        r = evaluate(str(self.out / "rgb" / "last.pt"), str(self.out / "teacher" / "last.pt"),
                     str(self.out / "student" / "last.pt"), out=self.out / "table")
        self.say("\n" + markdown(r) + "\n\n" + diagnostics_text(r) + "\n")
        return {"markdown": markdown(r), "rows": [{k: v for k, v in row.items() if k != "confusion"} for row in r["rows"]],
                "diagnostics": r["diagnostics"]}

    def _export(self):
        from .device.build import build_engine
        from .export.onnx import export
        from .core.errors import TensorRTUnavailable

        exp = export(self.out / "student" / "last.pt", self.out / "engines" / "student.onnx")
        p = exp["parity"]
        self.say(f"      ONNX {exp['onnx']}: parity with PyTorch on {p['clips']} real clips: top-1 "
                 f"{p['top1_agreement']:.0%}, max rel diff {p['max_rel_diff']:.1e}")
        info = {"onnx": exp["onnx"], "parity": p}
        try:
            build_engine(exp["onnx"], int8=True, calib_clips=min(128, self.cfg.per_class * self.cfg.classes // 2),
                         min_agreement=0.0, say=lambda m: self.say("      " + m), progress=self.progress)
        except TensorRTUnavailable as e:
            self.say(f"      engine: {e}")
            info["engine"] = str(e)
        int8 = {}
        for flavor in ("tensorrt", "cpu"):
            from .device.quantize import int8_path
            meta_p = Path(str(int8_path(exp["onnx"], flavor)) + ".json")
            if meta_p.exists():
                q = json.loads(meta_p.read_text())["quantization"]
                int8[flavor] = {"onnx": q["int8_onnx"], "check": q["check"]}
        info["int8"] = int8
        return info

    def _camera(self):
        from .live.camera import CameraSettings, run
        from .data.sources import SyntheticSource

        model = self.live_model()
        lines = self.out / "camera.jsonl"
        src = SyntheticSource("synthetic://", seed=99, size=self.cfg.video_size, max_frames=40 * 3, clip_frames=40)
        summary = run(CameraSettings.make(model=str(model), every=self.cfg.frames, json_out=str(lines),
                                          teacher=str(self.out / "teacher" / "last.pt"), flow_dir=str(self.out / "flow")),
                      sources=[src])
        preds = [json.loads(l) for l in lines.read_text().splitlines()]
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

        pics = sorted((self.out / "flow").glob("*.png"))[:6]
        if pics:
            imgs = [cv2.imread(str(p)) for p in pics]
            h = min(i.shape[0] for i in imgs)
            strip = np.concatenate([cv2.resize(i, (i.shape[1] * h // i.shape[0], h)) for i in imgs], 1)
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
        "  train longer:      fts-edge demo --epochs 30   (RGB alone catches up given time on this data: docs/experiments.md)",
        "  train on HMDB51:   python train/train_teacher.py --dataset hmdb51 --root hmdb51/videos --splits hmdb51/splits",
        "                     python train/train_student.py --dataset hmdb51 --root ... --teacher runs/teacher/best.pt",
        "  your own videos:   fts-edge data check --dataset folder --root my_videos   (then the same scripts)",
        f"  on the Jetson:     fts-edge build-engine {out}/engines/student.onnx --int8",
        f"  the camera:        fts-edge camera --input /dev/video0 --model {out}/engines/student.int8.cpu.onnx",
    ])
