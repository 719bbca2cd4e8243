"""The live camera app: sources -> rolling windows -> one batched inference per step -> smoothing,
events -> JSON lines, an annotated video, a browser page, a window; optionally the flow teacher
beside the student (teacher mode), to check that the student still sees the motion the teacher sees.
"""
from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .errors import FtsError, SourceError
from .runtime import softmax
from .stream import LIVE, EventDetector, LiveSettings, Smoother, Streams, topk

log = logging.getLogger(__name__)
DEFAULT_MODELS = ("engines/student.int8.engine", "engines/student.fp16.engine", "engines/student.int8.cpu.onnx",
                  "engines/student.onnx", "runs/demo/engines/student.int8.cpu.onnx", "runs/demo/engines/student.onnx",
                  "runs/demo/student/best.pt")


def default_model() -> str:
    """The model a command uses when none is named: engines/ first (where export writes), then the
    newest run of `fts-edge train` or the demo under runs/; an engine only where TensorRT is."""
    from .engine import tensorrt_or_none

    def usable(p: Path) -> bool:
        return p.exists() and (p.suffix != ".engine" or tensorrt_or_none() is not None)

    for p in DEFAULT_MODELS[:4]:
        if usable(Path(p)):
            return p
    runs = sorted((d for d in Path("runs").glob("*/engines") if d.is_dir()), key=lambda d: d.stat().st_mtime, reverse=True)
    for d in runs:
        for name in ("student.int8.engine", "student.fp16.engine", "student.int8.cpu.onnx", "student.onnx"):
            if usable(d / name):
                return str(d / name)
    for p in DEFAULT_MODELS[4:]:
        if usable(Path(p)):
            return p
    raise FtsError("no model given and none found in engines/ or runs/*/engines/; pass --model, or run "
                   "`fts-edge train DATA` or `fts-edge demo` first")


SCHEMA_VERSION = 1  # of the JSON lines (docs/camera-jsonl.md; docs/camera-jsonl.schema.json)
NO_ACTION = "no action"  # the label while no smoothed score is above --on


class JsonLines:
    """The camera's JSON lines, one object a line, each with the schema version."""

    def __init__(self, path: Optional[str]):
        self.f = open(path, "a", buffering=1) if path else sys.stdout

    def __call__(self, row: dict):
        self.f.write(json.dumps({"schema": SCHEMA_VERSION, **row}) + "\n")
        self.f.flush()

    def close(self):
        if self.f is not sys.stdout:
            self.f.close()


class Teacher:
    """The flow teacher beside the student: TV-L1 layers on CUDA where there is a GPU, else the CPU."""

    def __init__(self, ckpt: str, spec, flow_dir: Optional[str], say):
        import torch

        from .checkpoint import build_from_checkpoint, load_teacher

        ck = load_teacher(ckpt, spec)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cpu":
            say({"type": "warning", "message": "teacher mode on the CPU: TV-L1 flow is slow here (no CUDA GPU)"})
        self.model = build_from_checkpoint(ck, ckpt).to(self.device).freeze()
        self.classes = ck["classes"]
        self.flow_dir = Path(flow_dir) if flow_dir else None
        self.agree = 0
        self.n = 0

    def __call__(self, clip: np.ndarray, student_label: str, tag: str):
        import torch

        from .flow import flow_to_color, with_legend

        with torch.no_grad():
            x = torch.from_numpy(clip[None]).to(self.device)
            flow = self.model.flow(x)
            probs = torch.softmax(self.model.forward_head(self.model.forward_flow_features(flow)), 1)[0].cpu().numpy()
        last = flow[0, :, -1].cpu().numpy()
        top = max(float(np.sqrt((last ** 2).sum(0)).max()), 1e-3)
        picture = with_legend(flow_to_color(last, top), top)
        if self.flow_dir is not None:
            import cv2

            from .artifacts import atomic_write_bytes
            ok, buf = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
            atomic_write_bytes(self.flow_dir / f"flow_{tag}.png", buf.tobytes())
        agrees = self.classes[int(np.argmax(probs))] == student_label  # by name: the two lists may differ in order
        self.n += 1
        self.agree += int(agrees)
        return {"top": topk(probs, self.classes, LIVE.topk), "agrees": agrees,
                "agreement_so_far": self.agree / self.n}, picture


def overlay(frame_rgb: np.ndarray, label: str, score: float, fps: float, latency_ms: float,
            flow_picture: Optional[np.ndarray] = None) -> np.ndarray:
    """Frame with the label, a confidence bar, FPS and latency; the flow picture beside it if given. BGR."""
    import cv2

    img = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
    h, w = img.shape[:2]
    scale = max(0.4, w / 800)
    cv2.rectangle(img, (0, 0), (w, int(58 * scale)), (0, 0, 0), -1)
    cv2.putText(img, f"{label} {score:.0%}", (8, int(24 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale,
                (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)
    cv2.rectangle(img, (8, int(34 * scale)), (8 + int((w // 3) * score), int(46 * scale)), (0, 200, 0), -1)
    cv2.putText(img, f"{fps:.1f} cls/s  {latency_ms:.0f} ms", (w // 2, int(24 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                0.6 * scale, (200, 200, 200), 1, cv2.LINE_AA)
    if flow_picture is not None:
        fp = cv2.resize(cv2.cvtColor(flow_picture, cv2.COLOR_RGB2BGR), (h * flow_picture.shape[1] // flow_picture.shape[0], h))
        img = np.concatenate([img, fp], axis=1)
    return img


VIDEO_SUFFIXES = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "MJPG", ".mov": "mp4v"}


def check_output(output: str, overwrite: bool) -> None:
    """Refuse an --output that cannot be written, before the camera starts."""
    p = Path(output)
    if p.is_dir():
        raise FtsError(f"--output {output}: is a folder; name a video file (.mp4, .avi, .mkv, .mov)")
    if p.suffix.lower() not in VIDEO_SUFFIXES:
        raise FtsError(f"--output {output}: unknown video type {p.suffix or '(none)'!r}; use "
                       + ", ".join(VIDEO_SUFFIXES))
    if p.exists() and not overwrite:
        raise FtsError(f"--output {output}: exists; pass --overwrite to replace it")
    parent = p.parent if str(p.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FtsError(f"--output {output}: cannot make its folder ({e.strerror})")
    import os
    if not os.access(parent, os.W_OK):
        raise FtsError(f"--output {output}: its folder is not writable")


class Stopped(KeyboardInterrupt):
    """SIGTERM (what systemd and docker stop send): the camera finishes its outputs and exits 143."""


class Outputs:
    """Where annotated frames go: a video file, the browser page, a window."""

    def __init__(self, output: Optional[str], serve: Optional[str], display: bool, say, fps: float = 25.0):
        self.writer = None
        self.output, self.fps = output, fps
        self.server = None
        self.display = display
        if serve:
            from .serve import LiveServer
            host, _, port = serve.rpartition(":")
            self.server = LiveServer(host or "127.0.0.1", int(port))
            say({"type": "serving", "url": self.server.url})
        if display:
            import cv2
            try:
                cv2.namedWindow("fts-edge", cv2.WINDOW_NORMAL)
            except cv2.error:
                raise FtsError("--display: this OpenCV has no GUI support (opencv-*-headless, or no screen); "
                               "use --serve HOST:PORT or --output FILE")

    @property
    def wanted(self) -> bool:
        return bool(self.server or self.display)

    def write(self, img_bgr: np.ndarray):
        """One frame of the output video (every frame of the first source, at its own rate)."""
        import cv2

        if self.output:
            if self.writer is None:
                Path(self.output).parent.mkdir(parents=True, exist_ok=True)
                fourcc = cv2.VideoWriter_fourcc(*VIDEO_SUFFIXES[Path(self.output).suffix.lower()])
                self.writer = cv2.VideoWriter(self.output, fourcc, self.fps, (img_bgr.shape[1], img_bgr.shape[0]))
                if not self.writer.isOpened():
                    raise FtsError(f"--output {self.output}: OpenCV cannot write this video type here")
            self.writer.write(img_bgr)

    def __call__(self, img_bgr: np.ndarray, status: dict):
        """The newest classified frame to the page and the window."""
        import cv2

        if self.server:
            self.server.update(img_bgr, status)
        if self.display:
            cv2.imshow("fts-edge", img_bgr)
            cv2.waitKey(1)

    def finish(self, ended: Optional[str], linger: float = 0.0):
        """Close the video; the page says why the input ended (rather than freezing on the last
        window) and stays up ``linger`` seconds for a last look."""
        if self.server:
            self.server.set_status(ended=ended or "end of input")
            try:
                time.sleep(max(0.0, linger) if ended not in ("SIGTERM", "SIGINT") else 0.0)
            except KeyboardInterrupt:
                pass
        if self.writer is not None:
            self.writer.release()
        if self.server:
            self.server.close()


class LiveApp:
    """What the camera app does with each batch of windows: one batched inference, then per window
    the smoothed scores, the label ("no action" below ``on``), events, a JSON line, the teacher's
    view where asked, the annotated frame to the page and the window; and its counters."""

    def __init__(self, clf, uris: List[str], live: LiveSettings, say, outputs: "Outputs", teacher=None):
        self.clf, self.uris, self.live, self.say, self.outputs, self.teacher = clf, uris, live, say, outputs, teacher
        self.model = clf.describe()
        self.smoothers = [Smoother(live.smooth) for _ in uris]
        self.detectors = [EventDetector(clf.classes, live.on, live.off) for _ in uris]
        self.history = deque(maxlen=10)  # the page's event history
        self.latest = {"label": "...", "score": 0.0, "rate": 0.0, "latency": 0.0}  # of the first source
        self.latencies, self.infer_ms, self.n = [], [], 0
        self.t_start = time.perf_counter()

    def start(self) -> None:
        """The first JSON line: the model, the inputs, the clip and the cadence."""
        self.say({"type": "start", "model": self.model, "inputs": self.uris, "clip": self.clf.spec.to_dict(),
                  "every": self.live.every, "classes": len(self.clf.classes),
                  "streaming": bool(getattr(self.clf, "streaming", False))})

    def classify(self, windows: List, dropped: List[int]) -> None:
        if not windows:
            return
        t0 = time.perf_counter()
        clips = np.stack([w.clip for w in windows])
        if getattr(self.clf, "streaming", False):  # one step per source, each with its own state
            probs = softmax(self.clf.step_logits(clips, [w.source for w in windows]))
        else:
            probs = self.clf.classify(clips)  # one inference for every source
        t1 = time.perf_counter()
        self.infer_ms.append((t1 - t0) * 1000)
        for w, p in zip(windows, probs):
            if getattr(self.clf, "streaming", False) and not self.clf.warm(w.source):
                continue  # no whole clip stepped through yet: no label, as a clip model waits for its window
            self._one(w, p, (t1 - w.captured_at) * 1000, dropped[w.source])

    def _one(self, w, p: np.ndarray, lat: float, dropped: int) -> None:
        classes, k = self.clf.classes, self.live.topk
        self.n += 1
        self.latencies.append(lat)
        sm = self.smoothers[w.source](p)
        now, best = time.time(), int(np.argmax(sm))
        label = classes[best] if sm[best] >= self.live.on else NO_ACTION
        row = {"type": "prediction", "time": now, "source": self.uris[w.source], "frame": w.frame,
               "source_time": w.source_time, "label": label, "top": topk(p, classes, k),
               "smoothed": topk(sm, classes, k), "latency_ms": round(lat, 2),
               "inference_ms": round(self.infer_ms[-1], 2), "dropped_windows": dropped}
        picture = None
        if self.teacher is not None:
            row["teacher"], picture = self.teacher(w.clip, classes[int(np.argmax(p))], f"{w.source}_{w.frame:06d}")
        self.say(row)
        for ev in self.detectors[w.source](sm, w.frame, now):
            ev["source"] = self.uris[w.source]
            self.say(ev)
            self.history.append(ev)
        rate = self.n / max(time.perf_counter() - self.t_start, 1e-9)
        if w.source == 0:
            self.latest.update(label=label, score=float(sm[best]), rate=rate, latency=lat)
        if self.outputs.wanted and w.frame_rgb is not None:
            self.outputs(overlay(w.frame_rgb, label, float(sm[best]), rate, lat, picture),
                         {"label": label, "score": float(sm[best]), "frame": w.frame, "source": self.uris[w.source],
                          "model": self.model, "top": row["smoothed"], "events": list(self.history),
                          "latency_ms": lat, "classifications_per_s": rate})

    def write_frames(self, frames: List[np.ndarray]) -> None:
        """Frames of the first source to the output video, each with the latest window's label."""
        m = self.latest
        for frame in frames:
            self.outputs.write(overlay(frame, m["label"], m["score"], m["rate"], m["latency"]))

    def summary(self, streams, stopped_by: Optional[str], max_windows: Optional[int]) -> Dict:
        wall = time.perf_counter() - self.t_start
        lat = np.array(self.latencies) if self.latencies else np.zeros(1)
        span = streams.states[0].buffer.span
        for st in streams.states:  # a file that ended before it filled one window never gave a label: say so
            if st.error is None and st.windows == 0 and stopped_by is None and not max_windows:
                st.error = f"{st.uri}: ended after {st.frames} frames, before one window of {span} frames"
        out = {"type": "summary", "seconds": round(wall, 3), "classifications": self.n,
               "classifications_per_s": round(self.n / max(wall, 1e-9), 3),
               "latency_ms": {q: round(float(np.percentile(lat, v)), 2) for q, v in
                              (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))},
               "inference_ms_p50": round(float(np.median(self.infer_ms)), 2) if self.infer_ms else None,
               "sources": [{"uri": st.uri, "frames": st.frames, "windows": st.windows, "dropped_windows": st.dropped,
                            "error": st.error} for st in streams.states], "stopped": stopped_by}
        if self.teacher is not None:
            out["teacher_agreement"] = self.teacher.agree / max(self.teacher.n, 1)
        return out


@contextmanager
def sigterm_stops():
    """SIGTERM (systemd's and docker's stop) raises Stopped in the main thread while inside."""
    def on_sigterm(signum, frame):
        raise Stopped()

    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGTERM, on_sigterm) if main else None
    try:
        yield
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


def run(inputs: List[str], model: Optional[str] = None, stride: int = LIVE.every, smooth: int = LIVE.smooth,
        k: int = LIVE.topk, on: float = LIVE.on, off: float = LIVE.off, realtime: bool = False,
        json_out: Optional[str] = None,
        output: Optional[str] = None, serve: Optional[str] = None, display: bool = False,
        teacher: Optional[str] = None, flow_dir: Optional[str] = None, max_windows: Optional[int] = None,
        max_retries: int = 0, threads: int = 0, device: Optional[str] = None, sources=None,
        overwrite: bool = False, linger: float = 0.0) -> Dict:
    """The camera app: classify the inputs' windows until they end (or ``max_windows``
    classifications), and return the summary. ``sources`` (opened Source objects) may stand in for
    ``inputs`` (tests, embedding)."""
    from .runtime import load_classifier

    if output:
        check_output(output, overwrite)
    if stride < 1:
        raise FtsError("--every must be at least 1")
    say = JsonLines(json_out)
    clf = load_classifier(model or default_model(), device=device, threads=threads)
    streaming = bool(getattr(clf, "streaming", False))
    if streaming:  # a streaming student steps on every frame of its clip's sampling: --every does not apply
        stride = clf.spec.stride
    live = LiveSettings(every=stride, smooth=smooth, topk=k, on=on, off=off)
    how = dict(realtime=realtime, keep_frames=bool(serve or display), every_frame=bool(output), streaming=streaming)
    streams = (Streams(sources, clf.spec, live.every, on_event=say, **how) if sources is not None else
               Streams.open(inputs, clf.spec, live.every, max_retries=max_retries, on_event=say, **how))
    try:
        outs = Outputs(output, serve, display, say=say, fps=streams.fps)
    except BaseException:
        streams.close()
        raise
    app = LiveApp(clf, streams.uris, live, say, outs, Teacher(teacher, clf.spec, flow_dir, say) if teacher else None)
    app.start()
    stopped_by = None
    try:
        with sigterm_stops(), streams:
            while streams.streaming and not (max_windows and app.n >= max_windows):
                app.classify(streams.take(), streams.dropped)
                app.write_frames(streams.new_frames())
    except KeyboardInterrupt as e:
        stopped_by = "SIGTERM" if isinstance(e, Stopped) else "SIGINT"
        say({"type": "stopped", "reason": stopped_by})
    finally:
        app.write_frames(streams.new_frames())  # the frames read after the last window, with its label
        outs.finish(stopped_by or next((st.error for st in streams.states if st.error), None), linger)
    summary = app.summary(streams, stopped_by, max_windows)
    say(summary)
    say.close()
    errors = [st.error for st in streams.states if st.error]
    if errors and app.n == 0 and stopped_by is None:
        raise SourceError(errors[0])
    return summary
