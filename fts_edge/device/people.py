"""People as regions: a person detector, then a tracker, so each person keeps one id (and one clip
buffer) while they are in view.

Detectors:

* ``HogPeople``: OpenCV's built-in HOG + linear SVM people detector (Dalal and Triggs). Nothing to
  download; weak (upright, whole-body people taller than about 100 pixels) but real.
* ``OnnxPeople``: a person detector the user exported to ONNX, run with ONNX Runtime. The output
  layouts accepted, checked when the model is loaded:

  - ``(1, 4 + C, N)``: YOLOv8/YOLO11 heads (cx, cy, w, h, then C class scores);
  - ``(1, N, 5 + C)``: YOLOv5/YOLOv7 heads (cx, cy, w, h, objectness, then C class scores);
  - ``(1, N, 6)`` or ``(N, 6)`` with N at most 1000: boxes after NMS (x1, y1, x2, y2, score, class), as
    end-to-end exports give (a raw head has thousands of rows).

  The input is ``(1, 3, H, W)`` RGB in [0, 1], letterboxed (scaled to fit, padded with grey 114):
  what Ultralytics exports expect. Person is class ``person_class`` (0 in COCO).

Tracker: ByteTrack (Zhang et al. 2022) as the ``supervision`` package ships it (``pip install
'fts-edge[track]'``), or its successor in Roboflow's ``trackers`` package where that is installed.
Both are maintained implementations; this module only adapts boxes in and ids out.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core.errors import FtsError, UsageError

log = logging.getLogger(__name__)

DETECTORS = ("hog",)  # built in; anything else is the path of an ONNX detector
MAX_AFTER_NMS = 1000  # (1, N, 6) with N up to this is boxes after NMS; above it, a one-class YOLOv5 head
HOG_HEIGHT = 720  # frames are scaled to this height for HOG: its 64x128 window then finds ~100-px people


@dataclass
class Detections:
    """Boxes (N, 4) x1, y1, x2, y2 in frame pixels, and their scores (N,)."""

    xyxy: np.ndarray
    score: np.ndarray

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.score)


def nms(xyxy: np.ndarray, score: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by non-maximum suppression (OpenCV's)."""
    import cv2

    if len(score) == 0:
        return np.zeros(0, int)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), score.astype(float).tolist(), 0.0, iou)
    return np.asarray(keep, int).reshape(-1)


class HogPeople:
    """OpenCV's HOG people detector; ``threshold`` on its SVM margin."""

    name = "hog"

    def __init__(self, threshold: float = 0.5, height: int = HOG_HEIGHT):
        import cv2

        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.threshold, self.height = threshold, height

    def __call__(self, frame_rgb: np.ndarray) -> Detections:
        import cv2

        s = self.height / frame_rgb.shape[0]
        img = cv2.resize(frame_rgb, None, fx=s, fy=s) if abs(s - 1) > 1e-3 else frame_rgb
        rects, weights = self.hog.detectMultiScale(img, winStride=(8, 8), padding=(8, 8), scale=1.05)
        if len(rects) == 0:
            return Detections.empty()
        rects, weights = np.asarray(rects, np.float32) / s, np.asarray(weights, np.float32).reshape(-1)
        xyxy = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
        ok = weights >= self.threshold
        xyxy, weights = xyxy[ok], weights[ok]
        keep = nms(xyxy, weights, 0.45)
        return Detections(xyxy[keep], weights[keep])


def letterbox(frame_rgb: np.ndarray, h: int, w: int) -> Tuple[np.ndarray, float, Tuple[float, float]]:
    """The frame scaled to fit (h, w), padded with grey 114: (1, 3, h, w) float32 in [0, 1],
    the scale and the padding (left, top) to map boxes back."""
    import cv2

    H, W = frame_rgb.shape[:2]
    r = min(h / H, w / W)
    nh, nw = int(round(H * r)), int(round(W * r))
    top, left = (h - nh) // 2, (w - nw) // 2
    out = np.full((h, w, 3), 114, np.uint8)
    out[top:top + nh, left:left + nw] = cv2.resize(frame_rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out.transpose(2, 0, 1)[None].astype(np.float32) / 255.0, r, (left, top)


def output_layout(shape: Sequence) -> str:
    """Which of the accepted detector output layouts ``shape`` is ('yolov8', 'yolov5', 'nms'), or an
    error naming them. Dimensions may be symbolic (None or a name) except the one that tells."""
    dims = [d if isinstance(d, int) else None for d in shape]
    if len(dims) == 2 and dims[1] == 6:
        return "nms"
    if len(dims) == 3 and dims[0] in (1, None):
        a, b = dims[1], dims[2]
        if b == 6 and (a is None or a <= MAX_AFTER_NMS):  # a raw one-class YOLOv5 head has thousands of rows
            return "nms"
        if a is not None and b is not None and a < b and a >= 5:
            return "yolov8"
        if b is not None and b >= 6 and (a is None or a > b):
            return "yolov5"
        if a is not None and a >= 5 and b is None:
            return "yolov8"
    raise UsageError(f"the detector's output has shape {list(shape)}; accepted: (1, 4+C, N) as YOLOv8/YOLO11, "
                     "(1, N, 5+C) as YOLOv5/v7, or (1, N, 6) / (N, 6) boxes after NMS (x1, y1, x2, y2, score, class)")


def decode(out: np.ndarray, layout: str, person_class: int, threshold: float) -> Tuple[np.ndarray, np.ndarray]:
    """A detector's raw output -> person boxes (N, 4) x1, y1, x2, y2 in its input's pixels and scores."""
    out = np.asarray(out, np.float32)
    if layout == "nms":
        rows = out.reshape(-1, 6)
        rows = rows[(rows[:, 5].round() == person_class) & (rows[:, 4] >= threshold)]
        return rows[:, :4], rows[:, 4]
    rows = out[0].T if layout == "yolov8" else out[0]  # (N, 4 + ...)
    if layout == "yolov8":
        if person_class >= rows.shape[1] - 4:
            raise UsageError(f"the detector has {rows.shape[1] - 4} classes; person is class {person_class}")
        score = rows[:, 4 + person_class]
    else:
        if person_class >= rows.shape[1] - 5:
            raise UsageError(f"the detector has {rows.shape[1] - 5} classes; person is class {person_class}")
        score = rows[:, 4] * rows[:, 5 + person_class]
    keep = score >= threshold
    c, score = rows[keep, :4], score[keep]
    xyxy = np.concatenate([c[:, :2] - c[:, 2:] / 2, c[:, :2] + c[:, 2:] / 2], axis=1)
    k = nms(xyxy, score, 0.45)
    return xyxy[k], score[k]


class OnnxPeople:
    """A person detector exported to ONNX (layouts: the module's docstring), with ONNX Runtime."""

    def __init__(self, path: str, threshold: float = 0.4, person_class: int = 0, threads: int = 0):
        from .onnxrt import ort_session

        try:
            self.session = ort_session(path, threads=threads)
        except FtsError as e:  # it names the file and why
            raise UsageError(f"--detector {e}")
        except Exception as e:  # noqa: BLE001 - not an ONNX model ONNX Runtime can load
            raise UsageError(f"--detector {path}: ONNX Runtime cannot load it ({str(e).splitlines()[0]})")
        self.name = path
        ins, outs = self.session.get_inputs(), self.session.get_outputs()
        shape = list(ins[0].shape)
        if len(ins) != 1 or len(shape) != 4 or shape[1] != 3:
            raise UsageError(f"--detector {path}: expected one input (1, 3, H, W), got "
                             + ", ".join(f"{i.name} {list(i.shape)}" for i in ins))
        self.h = shape[2] if isinstance(shape[2], int) else 640
        self.w = shape[3] if isinstance(shape[3], int) else 640
        try:
            self.layout = output_layout(outs[0].shape)
        except UsageError as e:
            raise UsageError(f"--detector {path}: {e}")
        self.input, self.threshold, self.person_class = ins[0].name, threshold, person_class

    def __call__(self, frame_rgb: np.ndarray) -> Detections:
        x, r, (left, top) = letterbox(frame_rgb, self.h, self.w)
        out = self.session.run(None, {self.input: x})[0]
        if self.layout != "nms":
            output_layout(out.shape)  # a symbolic shape resolved to something else is said, not misread
        xyxy, score = decode(out, self.layout, self.person_class, self.threshold)
        xyxy = (xyxy - np.array([left, top, left, top], np.float32)) / r
        H, W = frame_rgb.shape[:2]
        xyxy = np.clip(xyxy, 0, [W, H, W, H])
        return Detections(xyxy.astype(np.float32), score.astype(np.float32))


def make_detector(spec: str, threads: int = 0):
    """``hog`` or the path of an ONNX person detector."""
    if spec == "hog":
        return HogPeople()
    from pathlib import Path

    if not Path(spec).is_file():
        raise UsageError(f"--detector {spec}: no such file (give 'hog' or a person detector's .onnx)")
    return OnnxPeople(spec, threads=threads)


class ByteTracker:
    """ByteTrack over a detector's boxes: ``update(detections)`` -> {track id: box x1, y1, x2, y2}."""

    def __init__(self, fps: float = 30.0, lost_frames: Optional[int] = None):
        held = lost_frames if lost_frames is not None else max(int(round(fps)), 1)
        # both implementations keep a lost track for lost_track_buffer * frame_rate / 30 updates
        lost = int(np.ceil(held * 30.0 / max(fps, 1e-6)))
        try:
            from trackers import ByteTrackTracker  # the maintained successor, where installed

            self.impl, self.kind = ByteTrackTracker(lost_track_buffer=lost, frame_rate=fps), "trackers"
        except ImportError:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)  # moved to `trackers`; same algorithm here
                    from supervision.tracker.byte_tracker.core import ByteTrack
                    self.impl = ByteTrack(lost_track_buffer=lost, frame_rate=int(round(fps)) or 1,
                                          minimum_consecutive_frames=1)
            except ImportError:
                raise FtsError("--track needs ByteTrack: pip install 'fts-edge[track]' (the supervision package)")
            self.kind = "supervision"

    def update(self, det: Detections) -> Dict[int, np.ndarray]:
        from supervision import Detections as SvDetections

        d = SvDetections(xyxy=det.xyxy.astype(np.float32).reshape(-1, 4),
                         confidence=det.score.astype(np.float32), class_id=np.zeros(len(det), int))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            out = self.impl.update(d) if self.kind == "trackers" else self.impl.update_with_detections(d)
        if out.tracker_id is None:
            return {}
        return {int(t): box for t, box in zip(out.tracker_id, out.xyxy) if t is not None and int(t) >= 0}


class PeopleTracker:
    """Detect every ``detect_every`` frames and track: which people are in view, and who came and
    went. ``__call__(frame)`` -> ({track id: box x, y, w, h in pixels}, [("begin"|"end", id, box)]).

    A person the detector misses keeps their last box (and their clip) for as long as ByteTrack
    keeps the lost track, ``hold_s`` seconds: found again under the same id, they carry on; not
    found by then, their track ends. Between detections each person keeps their last box. Ids
    are never reused."""

    def __init__(self, detector, fps: float = 30.0, detect_every: int = 1, hold_s: float = 1.0):
        self.detector, self.detect_every = detector, max(1, detect_every)
        rate = fps / self.detect_every  # detections a second
        self.hold = max(1, int(round(hold_s * rate)))  # detections a lost person is held for
        self.tracker = ByteTracker(rate, lost_frames=self.hold)
        self.active: Dict[int, Tuple[int, int, int, int]] = {}
        self.seen: Dict[int, int] = {}  # track id -> the detection it was last reported at
        self.frames = self.detections = 0

    def __call__(self, frame_rgb: np.ndarray) -> Tuple[Dict[int, Tuple[int, int, int, int]], List[Tuple]]:
        events: List[Tuple] = []
        if self.frames % self.detect_every == 0:
            tracks = self.tracker.update(self.detector(frame_rgb))
            for t, b in tracks.items():
                if t not in self.active:
                    events.append(("begin", t, xywh(b)))
                self.active[t], self.seen[t] = xywh(b), self.detections
            for t in sorted(t for t in self.active if self.detections - self.seen[t] > self.hold):
                events.append(("end", t, self.active.pop(t)))
                del self.seen[t]
            self.detections += 1
        self.frames += 1
        return dict(self.active), events


def xywh(b: Sequence[float]) -> Tuple[int, int, int, int]:
    x1, y1, x2, y2 = (float(v) for v in b)
    return int(round(x1)), int(round(y1)), max(1, int(round(x2 - x1))), max(1, int(round(y2 - y1)))
