"""The live camera app: sources -> rolling windows -> one batched inference per step -> smoothing,
events -> JSON lines, an annotated video, a browser page, a window; optionally the flow teacher
beside the student (teacher mode), to check that the student still sees the motion the teacher sees.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..core.artifacts import check_output_file
from ..core.errors import FtsError, SourceError, Terminated, UsageError, terminate_as_interrupt
from ..core.settings import Settings, setting
from ..device.locate import default_model
from ..device.runtime import softmax
from .stream import LIVE, EventDetector, LiveSettings, Smoother, Streams, topk

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1  # of the JSON lines (docs/camera-jsonl.md; docs/camera-jsonl.schema.json)
NO_ACTION = "no action"  # the label while no smoothed score is above --on


class JsonLines:
    """The camera's JSON lines, one object a line, each with the schema version: to a file
    (appended) or to standard output. A write that fails names the file; standard output whose
    reader has gone (``| head``) raises ReaderGone, which ends the app quietly."""

    def __init__(self, path: Optional[str]):
        self.path = path or "standard output"
        if path:
            try:
                self.f = open(path, "a", buffering=1)
            except OSError as e:
                raise type(e)(e.errno, e.strerror, str(path)) from None
        elif sys.stdout is None:
            raise FtsError("standard output is closed: write the JSON lines to a file with --json-out FILE")
        else:
            self.f = sys.stdout
        self.last_summary: Dict = {}

    def __call__(self, row: dict):
        if row.get("type") == "summary":
            self.last_summary = row
        try:
            self.f.write(json.dumps({"schema": SCHEMA_VERSION, **row}) + "\n")
            self.f.flush()
        except BrokenPipeError:
            if self.f is sys.stdout:
                _quiet_stdout()
                raise ReaderGone() from None
            raise
        except OSError as e:  # a full disk
            self.failed = True
            raise type(e)(e.errno, e.strerror, self.path) from None

    def close(self):
        if self.f is not sys.stdout:
            try:
                self.f.close()
            except OSError as e:
                if not getattr(self, "failed", False):  # the write that failed has said so already
                    raise type(e)(e.errno, e.strerror, self.path) from None


def _quiet_stdout() -> None:
    """Standard output's reader has gone: what is still written (and the flush at exit) goes to
    /dev/null instead of raising again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)




def overlay(frame_rgb: np.ndarray, label: str, score: float, fps: float, latency_ms: float,
            flow_picture: Optional[np.ndarray] = None) -> np.ndarray:
    """Frame with the label, a confidence bar, FPS and latency; the flow picture beside it if given. BGR.

    Args:
        frame_rgb: the frame (H, W, 3) RGB.
        label, score: the smoothed label and its score.
        fps, latency_ms: classifications a second and frame-to-label latency.
        flow_picture: teacher mode's flow picture, or None.

    Returns:
        The annotated frame, BGR (wider where a flow picture is beside it).
    """
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
        side = (h * flow_picture.shape[1] // flow_picture.shape[0], h)
        fp = cv2.resize(cv2.cvtColor(flow_picture, cv2.COLOR_RGB2BGR), side)
        img = np.concatenate([img, fp], axis=1)
    return img


def overlay_regions(frame_rgb: np.ndarray, marks: List[Tuple], fps: float, latency_ms: float) -> np.ndarray:
    """Frame with each region's or person's box and its label above it, and FPS and latency. BGR.

    Args:
        frame_rgb: the frame (H, W, 3) RGB.
        marks: (name, box x, y, w, h, label, score) per region or person.
        fps, latency_ms: classifications a second and frame-to-label latency.
    """
    import cv2

    img = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
    h, w = img.shape[:2]
    scale = max(0.4, w / 800)
    thick = max(2, int(2 * scale))
    for name, (x, y, bw, bh), label, score in marks:
        colour = (0, 200, 0) if label != NO_ACTION else (160, 160, 160)
        cv2.rectangle(img, (int(x), int(y)), (int(x + bw), int(y + bh)), colour, thick)
        text = f"{name}: {label} {score:.0%}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, 1)
        ty = int(y) - 4 if int(y) - th - base - 4 >= 0 else int(y) + th + 4
        cv2.rectangle(img, (int(x), ty - th - 2), (int(x) + tw + 4, ty + base), (0, 0, 0), -1)
        cv2.putText(img, text, (int(x) + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    cv2.putText(img, f"{fps:.1f} cls/s  {latency_ms:.0f} ms", (8, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale,
                (200, 200, 200), 1, cv2.LINE_AA)
    return img


def mark_name(w) -> str:
    """A window's region as the overlay and the page name it: the region's name, or person N."""
    return str(w.region) if w.track is None else f"person {w.track}"


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


Stopped = Terminated  # SIGTERM (what systemd and docker stop send): the camera finishes its outputs, exits 143


class ReaderGone(KeyboardInterrupt):
    """Standard output's reader has gone (``fts-edge camera | head -1``): the camera finishes its
    outputs and stops quietly, as a Unix tool does."""


def stop_reason(e: KeyboardInterrupt) -> str:
    return "SIGTERM" if isinstance(e, Stopped) else "reader gone" if isinstance(e, ReaderGone) else "SIGINT"


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


@dataclass
class Result:
    """One classified window: its label (``NO_ACTION`` below ``on``), smoothed score and JSON row."""

    window: "object"
    label: str
    score: float
    row: Dict
    rate: float  # classifications a second so far
    latency_ms: float
    flow_picture: Optional[np.ndarray] = None  # teacher mode


class LiveApp:
    """What the camera app does with each batch of windows: one batched inference, then per window
    the smoothed scores, the label ("no action" below ``on``), events, a JSON line, the teacher's
    view where asked, the annotated frame to the page and the window; and its counters."""

    def __init__(self, clf, uris: List[str], live: LiveSettings, every: int, say, outputs: "Outputs", teacher=None):
        self.clf, self.uris, self.live, self.say, self.outputs, self.teacher = clf, uris, live, say, outputs, teacher
        self.every = every  # frames between classifications: the streams' cadence (a streaming model's own)
        self.model = clf.describe()
        # per source, or per (source, region or track): smoothed scores and events
        self.smoothers: Dict = {}
        self.detectors: Dict = {}
        self.history = deque(maxlen=10)  # the page's event history
        self.latest = {"label": "...", "score": 0.0, "rate": 0.0, "latency": 0.0}  # of the first source
        self.marks: Dict = {}  # the first source's regions and people: key -> (name, box, label, score)
        self.latencies, self.infer_ms, self.n = [], [], 0
        self.t_start = time.perf_counter()

    def start(self) -> None:
        """The first JSON line: the model, the inputs, the clip and the cadence."""
        self.say({"type": "start", "model": self.model, "inputs": self.uris, "clip": self.clf.spec.to_dict(),
                  "every": self.every, "classes": len(self.clf.classes),
                  "streaming": self.clf.streaming})

    def classify(self, windows: List, dropped: List[int]) -> List["Result"]:
        """One inference for every window (a step per source for a streaming student), then per
        window the smoothed scores, the label, events and the JSON lines. Returns the results to
        render; a streaming student gives none for a source until a whole clip has stepped through."""
        if not windows:
            return []
        t0 = time.perf_counter()
        clips = np.stack([w.clip for w in windows])
        if self.clf.streaming:  # one step per source (region, person), each with its own state
            probs = softmax(self.clf.step_logits(clips, [w.key for w in windows]))
        else:
            probs = self.clf.classify(clips)  # one inference for every source, region and person
        t1 = time.perf_counter()
        self.infer_ms.append((t1 - t0) * 1000)
        return [self._one(w, p, (t1 - w.captured_at) * 1000, dropped[w.source]) for w, p in zip(windows, probs)
                if not (self.clf.streaming and not self.clf.warm(w.key))]

    def tracks(self, events: List[Tuple]) -> None:
        """Tracks that began or ended: a ``track`` row each; an ended track's actions end with it,
        and its smoothing, events and streaming state are dropped."""
        for source, frame, phase, tid, box in events:
            key, now = (source, tid), time.time()
            self.say({"type": "track", "phase": phase, "source": self.uris[source], "track_id": tid, "frame": frame,
                      "time": now, "box": [int(v) for v in box]})
            if phase != "end":
                continue
            det = self.detectors.pop(key, None)
            for c in sorted(det.active) if det is not None else ():
                began = det.active.pop(c)
                ev = {"type": "event", "phase": "end", "label": self.clf.classes[c], "score": 0.0, "frame": frame,
                      "time": now, "started_frame": began["frame"], "duration_s": now - began["time"],
                      "source": self.uris[source], "track_id": tid, "reason": "track ended"}
                self.say(ev)
                self.history.append(ev)
            self.smoothers.pop(key, None)
            self.marks.pop(key, None)
            if self.clf.streaming:
                self.clf.forget(key)

    def _one(self, w, p: np.ndarray, lat: float, dropped: int) -> "Result":
        classes, k = self.clf.classes, self.live.topk
        self.n += 1
        self.latencies.append(lat)
        if w.key not in self.smoothers:
            self.smoothers[w.key] = Smoother(self.live.smooth)
            self.detectors[w.key] = EventDetector(classes, self.live.on, self.live.off)
        sm = self.smoothers[w.key](p)
        now, best = time.time(), int(np.argmax(sm))
        label = classes[best] if sm[best] >= self.live.on else NO_ACTION
        row = {"type": "prediction", "time": now, "source": self.uris[w.source], "frame": w.frame,
               "source_time": w.source_time}
        where = {}
        if w.region is not None:
            where = {"region": w.region, "box": [int(v) for v in w.box]}
        elif w.track is not None:
            where = {"track_id": w.track, "box": [int(v) for v in w.box]}
        row.update(where)
        row.update({"label": label, "top": topk(p, classes, k), "smoothed": topk(sm, classes, k),
                    "latency_ms": round(lat, 2), "inference_ms": round(self.infer_ms[-1], 2),
                    "dropped_windows": dropped})
        picture = None
        if self.teacher is not None:
            row["teacher"], picture = self.teacher(w.clip, classes[int(np.argmax(p))], f"{w.source}_{w.frame:06d}")
        self.say(row)
        for ev in self.detectors[w.key](sm, w.frame, now):
            ev["source"] = self.uris[w.source]
            ev.update({k: v for k, v in where.items() if k != "box"})
            self.say(ev)
            self.history.append(ev)
        rate = self.n / max(time.perf_counter() - self.t_start, 1e-9)
        if w.source == 0:
            self.latest.update(label=label, score=float(sm[best]), rate=rate, latency=lat)
            if w.box is not None:
                self.marks[w.key] = (mark_name(w), tuple(w.box), label, float(sm[best]))
        return Result(w, label, float(sm[best]), row, rate, lat, picture)

    def render(self, r: "Result") -> None:
        """The window's newest frame with its label overlaid, to the page and the window."""
        self.render_all([r])

    def render_all(self, results: List["Result"]) -> None:
        """Each source's newest classified frame, to the page and the window: its label overlaid
        (whole frames), or every region's and person's box with its label."""
        if not self.outputs.wanted:
            return
        by_source: Dict[int, List[Result]] = {}
        for r in results:
            if r.window.frame_rgb is not None:
                by_source.setdefault(r.window.source, []).append(r)
        for source, rs in by_source.items():
            r = rs[-1]
            status = {"frame": r.window.frame, "source": self.uris[source], "model": self.model,
                      "events": list(self.history), "latency_ms": r.latency_ms, "classifications_per_s": r.rate}
            if r.window.box is None:
                img = overlay(r.window.frame_rgb, r.label, r.score, r.rate, r.latency_ms, r.flow_picture)
                status.update(label=r.label, score=r.score, top=r.row["smoothed"])
            else:
                marks = [(mark_name(x.window), x.window.box, x.label, x.score) for x in rs]
                img = overlay_regions(r.window.frame_rgb, marks, r.rate, r.latency_ms)
                status["regions"] = [{"name": n, "box": [int(v) for v in b], "label": lab, "score": sc}
                                     for n, b, lab, sc in marks]
            self.outputs(img, status)

    def write_frames(self, frames: List[np.ndarray]) -> None:
        """Frames of the first source to the output video, each with the latest window's label (or
        the latest labels of its regions and people)."""
        m = self.latest
        for frame in frames:
            if self.marks:
                self.outputs.write(overlay_regions(frame, list(self.marks.values()), m["rate"], m["latency"]))
            else:
                self.outputs.write(overlay(frame, m["label"], m["score"], m["rate"], m["latency"]))

    def summary(self, streams, stopped_by: Optional[str], max_windows: Optional[int]) -> Dict:
        wall = time.perf_counter() - self.t_start
        lat = np.array(self.latencies) if self.latencies else np.zeros(1)
        span = streams.span
        for st in streams.states:  # a file that ended before it filled one window never gave a label: say so
            short = st.frames < span if st.targets.people is not None else st.windows == 0  # nobody seen is no error
            if st.error is None and short and stopped_by is None and not max_windows:
                st.error = f"{st.uri}: ended after {st.frames} frames, before one window of {span} frames"
        out = {"type": "summary", "seconds": round(wall, 3), "classifications": self.n,
               "classifications_per_s": round(self.n / max(wall, 1e-9), 3),
               "latency_ms": {q: round(float(np.percentile(lat, v)), 2) for q, v in
                              (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))},
               "inference_ms_p50": round(float(np.median(self.infer_ms)), 2) if self.infer_ms else None,
               "sources": [{"uri": st.uri, "frames": st.frames, "windows": st.windows, "dropped_windows": st.dropped,
                            "error": st.error, **({"tracks": st.tracks} if st.targets.people is not None else {})}
                           for st in streams.states], "stopped": stopped_by}
        if self.teacher is not None:
            out["teacher_agreement"] = self.teacher.agree / max(self.teacher.n, 1)
        return out


def sigterm_stops():
    """SIGTERM (systemd's and docker's stop) raises Stopped in the main thread while inside."""
    return terminate_as_interrupt()


@dataclass(frozen=True)
class CameraSettings(Settings):
    """Everything `fts-edge camera` does, built once at the command line (or by ``make``),
    validated here, and passed whole. ``live`` holds how windows are classified and reported
    (``every``, ``smooth``, ``topk``, ``on``, ``off``: LiveSettings); a streaming student takes its
    own cadence from the classifier, whatever ``every`` says.

    Args:
        inputs: source URIs (/dev/videoN, v4l2://N, csi://N, rtsp://..., a file, synthetic://).
        model: the artifact (.engine, .onnx, .pt); None: the best one found (``default_model``).
        live: LiveSettings.
        realtime: play files at their own frame rate, as a camera (windows may then be dropped).
        json_out: append the JSON lines to this file (None: stdout).
        output, overwrite: an annotated video to write, and whether it may replace one.
        serve: HOST:PORT of the live page (no authentication: 127.0.0.1 unless named).
        display: an OpenCV window.
        linger: seconds the page stays up after the input ends.
        teacher, flow_dir: teacher mode's checkpoint, and where its flow pictures go.
        max_windows: stop after this many classifications.
        max_retries: give up on a lost camera after this many failed reopenings (0: never).
        threads, device: the runtime's threads and device (cpu, cuda; None: the best there is).
        regions: ``NAME=x,y,w,h`` or ``N:NAME=x,y,w,h`` (input N), each classified on its own.
        regions_file: a JSON or YAML file of regions (``data.regions.load_regions_file``).
        track: ``person``: classify each tracked person (a detector, then ByteTrack).
        detector: ``hog`` (OpenCV's, built in) or a person detector's ONNX.
        detect_every: run the detector every N frames (people keep their boxes between).
    """

    inputs: Tuple[str, ...] = ()
    model: Optional[str] = None
    live: LiveSettings = LIVE
    realtime: bool = False
    json_out: Optional[str] = None
    output: Optional[str] = None
    overwrite: bool = False
    serve: Optional[str] = None
    display: bool = False
    linger: float = setting(0.0, lo=0.0, hi=3600.0)
    teacher: Optional[str] = None
    flow_dir: Optional[str] = None
    max_windows: Optional[int] = setting(None, lo=1)
    max_retries: int = setting(0, lo=0)
    threads: int = setting(0, lo=0, hi=256)
    device: Optional[str] = None
    regions: Tuple[str, ...] = ()
    regions_file: Optional[str] = None
    track: Optional[str] = None
    detector: str = "hog"
    detect_every: int = setting(1, lo=1, help="run the person detector every N frames")

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(str(i) for i in self.inputs))
        object.__setattr__(self, "regions", tuple(str(r) for r in self.regions))
        super().__post_init__()
        if self.track not in (None, "person"):
            raise UsageError(f"--track: only 'person' is tracked, got {self.track!r}")
        if self.track and (self.regions or self.regions_file):
            raise UsageError("--track person and --roi/--regions: give one (people are regions that move)")
        if self.teacher and (self.track or self.regions or self.regions_file):
            raise UsageError("--teacher compares whole frames: it does not take --roi, --regions or --track")
        if self.json_out:
            check_output_file(self.json_out, "--json-out")
        if self.flow_dir and Path(self.flow_dir).exists() and not Path(self.flow_dir).is_dir():
            raise UsageError(f"--flow-dir {self.flow_dir}: is a file; name a folder for the flow pictures")
        if self.device not in (None, "cpu", "cuda"):
            raise UsageError(f"--device must be cpu or cuda, got {self.device!r}")
        if self.serve is not None:
            from .serve import parse_serve
            object.__setattr__(self, "serve", parse_serve(self.serve))

    @classmethod
    def make(cls, **kw) -> "CameraSettings":
        """Settings from keywords, the live ones (every, smooth, topk, on, off) among them; a None
        keeps the default, so a flag left unset never overrides one."""
        kw = {k: v for k, v in kw.items() if v is not None}
        live = {k: kw.pop(k) for k in [f.name for f in dataclasses.fields(LiveSettings)] if k in kw}
        return cls(live=dataclasses.replace(kw.pop("live", LIVE), **live), **kw)


def iterate(clf, s: CameraSettings, sources=None, load=None) -> Iterator[Dict]:
    """The camera app as a stream of JSON rows: a ``start`` row, then ``prediction``, ``event``
    and source rows as they come, and a last ``summary``; the annotated video, the page and the
    window are fed on the way. ``clf``: a Classifier, or None to load ``s.model`` (with ``load``:
    ``fts_edge.load``'s loader takes checkpoints too). ``sources`` (opened Source objects) may
    stand in for ``s.inputs`` (tests, embedding). SIGTERM ends it as Ctrl-C does: the outputs are
    finished, a ``stopped`` row and the summary come last."""
    from ..device.runtime import as_classifier

    if s.output:
        check_output(s.output, s.overwrite)
    rows: deque = deque()
    say = rows.append  # rows from capture threads (a lost source) too: deque appends are thread-safe
    regions = _regions(s, len(sources) if sources is not None else len(s.inputs))
    clf = as_classifier(clf if clf is not None else (s.model or default_model()), load, s.device, s.threads)
    people = _people(s, clf, say)
    how = dict(realtime=s.realtime, keep_frames=bool(s.serve or s.display), every_frame=bool(s.output),
               regions=regions, people=people)
    streams = (Streams(sources, clf, s.live.every, on_event=say, **how) if sources is not None else
               Streams.open(list(s.inputs), clf, s.live.every, max_retries=s.max_retries, on_event=say, **how))
    try:
        outs = Outputs(s.output, s.serve, s.display, say=say, fps=streams.fps)
    except BaseException:
        streams.close()
        raise
    teacher = None
    if s.teacher:
        from .teacher import Teacher  # teacher mode: the live half's one import of torch

        teacher = Teacher(s.teacher, clf.spec, s.flow_dir, say)
    app = LiveApp(clf, streams.uris, s.live, streams.every, say, outs, teacher)
    app.start()
    stopped_by = None
    try:
        with sigterm_stops(), streams:
            while streams.streaming and not (s.max_windows and app.n >= s.max_windows):
                results = app.classify(streams.take(), streams.dropped)
                app.tracks(streams.track_events())
                app.render_all(results)
                app.write_frames(streams.new_frames())
                while rows:
                    yield rows.popleft()
    except KeyboardInterrupt as e:
        stopped_by = stop_reason(e)
        say({"type": "stopped", "reason": stopped_by})
    finally:
        app.write_frames(streams.new_frames())  # the frames read after the last window, with its label
        outs.finish(stopped_by or next((st.error for st in streams.states if st.error), None), s.linger)
    say(app.summary(streams, stopped_by, s.max_windows))
    while rows:
        yield rows.popleft()


def _regions(s: CameraSettings, inputs: int):
    """Each input's regions from --roi and --regions (None: whole frames)."""
    if not (s.regions or s.regions_file):
        return None
    from ..data.regions import load_regions_file, parse_region, regions_per_input

    specs = [parse_region(r) for r in s.regions] + (load_regions_file(s.regions_file) if s.regions_file else [])
    return regions_per_input(specs, max(inputs, 1))


def _people(s: CameraSettings, clf, say):
    """With --track person: a maker of each source's PeopleTracker; the model's crop policy checked."""
    crop = getattr(clf.spec, "crop", "frame")
    if not s.track:
        if crop == "person":
            raise UsageError("this model was trained on crops around tracked people (crop: person): "
                             "run it with --track person")
        return None
    from ..device.people import ByteTracker, PeopleTracker, make_detector

    make_detector(s.detector, s.threads)  # a detector that cannot load is said before the camera opens
    ByteTracker()  # and a missing tracker
    if crop != "person":
        say({"type": "warning", "message": "this model was trained on whole frames; with --track person it sees "
                                           "crops around people (train with --crop person for those)"})
    return lambda fps: PeopleTracker(make_detector(s.detector, s.threads), fps, s.detect_every)


def run(s: CameraSettings, clf=None, load=None, sources=None) -> Dict:
    """The camera app: classify the inputs' windows until they end (or ``max_windows``
    classifications), write the JSON lines, and return the summary (``iterate`` has the rest)."""
    say = JsonLines(s.json_out)
    rows = iterate(clf, s, sources, load)
    try:
        try:
            for row in rows:
                say(row)
        except ReaderGone as e:  # nobody reads the lines any more: finish the outputs, write nothing more
            for row in _finish(rows, e):
                say.last_summary = row if row.get("type") == "summary" else say.last_summary
        except KeyboardInterrupt as e:  # arrived while a row was being written: the app finishes all the same
            for row in _finish(rows, e):
                say(row)
    finally:
        say.close()
    summary = say.last_summary
    errors = [src["error"] for src in summary.get("sources", []) if src.get("error")]
    if errors and summary.get("classifications") == 0 and not summary.get("stopped"):
        raise SourceError(errors[0])
    return summary


def _finish(rows: Iterator[Dict], e: BaseException) -> Iterator[Dict]:
    """The rows a stopped app still gives: ``e`` thrown in where it waits, then the rest."""
    try:
        first = rows.throw(e)
    except StopIteration:
        return
    yield first
    yield from rows
