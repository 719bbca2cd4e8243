"""Live classification of a frame stream: a rolling window of the last T frames, kept as a ring
(no shifting of T frames per new frame), each frame preprocessed once as it arrives.

* No classification until the window is full (never a zero-padded window at start-up).
* One classification every ``every`` frames (a streaming student: every frame of its sampling,
  the classifier's own cadence); scores smoothed over the last ``smooth`` windows.
* Events with hysteresis: an action starts when its smoothed score passes ``on``, ends when it
  falls below ``off``.
* Live sources (and files played in real time) are read in a thread of their own: a slow model
  never stalls the camera; only the newest window waits for the model, and every window replaced
  before the model took it is counted as dropped. A file read as fast as possible is read by the
  loop itself, one window at a time as the model asks for it: every window is classified, in
  order, and two runs on one file read the same frames and print the same numbers.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core.settings import Settings, setting
from ..data.clipspec import ClipSpec
from ..data.regions import cut, tube
from ..data.transforms import preprocess_frame


class ClipBuffer:
    """Ring of the last ``spec.span`` preprocessed frames, (span, 3, S, S) float32.

    A clip is ``spec.frames`` frames ``spec.stride`` apart, ending at the newest frame: the same
    temporal sampling the network was trained with (a stride-2 model sees every other frame here too).
    """

    def __init__(self, spec: ClipSpec):
        self.spec = spec
        self.span = spec.span
        self.ring = np.zeros((self.span, 3, spec.size, spec.size), np.float32)
        self.count = 0  # frames pushed so far

    def push(self, frame_rgb: np.ndarray) -> None:
        self.ring[self.count % self.span] = preprocess_frame(frame_rgb, self.spec)
        self.count += 1

    @property
    def full(self) -> bool:
        return self.count >= self.span

    def window(self) -> np.ndarray:
        """The clip ending at the newest frame, in time order, (3, T, S, S)."""
        if not self.full:
            raise RuntimeError("the window is not full yet")
        slots = (self.count - self.span + np.arange(self.spec.frames) * self.spec.stride) % self.span
        return np.ascontiguousarray(self.ring[slots].transpose(1, 0, 2, 3))


class FrameBuffer(ClipBuffer):
    """The streaming student's buffer: no ring, only the newest preprocessed frame, handed over as
    a one-frame window (3, 1, S, S); the model carries the past in its state instead."""

    def __init__(self, spec: ClipSpec):
        self.spec, self.span, self.count = spec, 1, 0
        self.ring = np.zeros((1, 3, spec.size, spec.size), np.float32)

    def window(self) -> np.ndarray:
        if not self.full:
            raise RuntimeError("no frame yet")
        return self.ring[0][:, None].copy()  # a copy: the next frame overwrites the ring


@dataclass(frozen=True)
class LiveSettings(Settings):
    """How a live stream is classified and reported, declared once: the camera command, the app,
    the Python API's stream, the benchmark and the event detector all read them from here."""

    every: int = setting(5, lo=1, help="classify every N frames")
    smooth: int = setting(3, lo=1, help="average scores over the last K windows")
    topk: int = setting(3, lo=1, help="classes reported per window")
    on: float = setting(0.6, lo=0.0, hi=1.0, help="an event starts when a smoothed score rises above this")
    off: float = setting(0.4, lo=0.0, hi=1.0, help="and ends when it falls below this")

    def __post_init__(self):
        super().__post_init__()
        if self.off > self.on:
            from ..core.errors import UsageError
            raise UsageError(f"--off must be from 0.0 to --on ({self.on}), got {self.off}")


LIVE = LiveSettings()


class Smoother:
    def __init__(self, k: int):
        self.k = max(1, k)
        self.hist: Deque[np.ndarray] = deque(maxlen=self.k)

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        self.hist.append(probs)
        return np.mean(self.hist, axis=0)


class EventDetector:
    """Hysteresis per class: start above ``on``, end below ``off``."""

    def __init__(self, classes: List[str], on: float = LIVE.on, off: float = LIVE.off):
        if not 0 <= off <= on <= 1:
            raise ValueError("event thresholds need 0 <= off <= on <= 1")
        self.classes, self.on, self.off = classes, on, off
        self.active: Dict[int, dict] = {}

    def __call__(self, smoothed: np.ndarray, frame: int, t: float) -> List[dict]:
        events = []
        for c, s in enumerate(smoothed):
            if c not in self.active and s >= self.on:
                self.active[c] = {"frame": frame, "time": t}
                events.append({"type": "event", "phase": "begin", "label": self.classes[c], "score": float(s),
                               "frame": frame, "time": t})
            elif c in self.active and s < self.off:
                began = self.active.pop(c)
                events.append({"type": "event", "phase": "end", "label": self.classes[c], "score": float(s),
                               "frame": frame, "time": t, "started_frame": began["frame"],
                               "duration_s": t - began["time"]})
        return events


@dataclass
class Window:
    source: int
    frame: int  # index of the newest frame in the window
    clip: np.ndarray
    captured_at: float  # perf_counter when the newest frame arrived
    frame_rgb: Optional[np.ndarray] = None
    # the newest frame's time in the source: seconds into a file, or epoch time live
    source_time: Optional[float] = None
    region: Optional[str] = None  # a named region's name
    track: Optional[int] = None  # a tracked person's id
    box: Optional[Tuple[int, int, int, int]] = None  # the region or person's box, x, y, w, h in pixels

    @property
    def key(self):
        """What has its own buffer, smoothing, events and streaming state: the source (whole
        frames), or the source and a region's name or a person's track id."""
        if self.region is None and self.track is None:
            return self.source
        return (self.source, self.region if self.track is None else self.track)


class TubeBuffer:
    """A tracked person's window for a clip model: the frames of the source's raw ring (shared by
    every person of the source) cut, at window time, with one square around everywhere the person
    was during the window (``data.regions.tube``), so the window keeps their motion."""

    def __init__(self, spec: ClipSpec, frames: Deque):
        self.spec, self.span, self.frames = spec, spec.span, frames
        self.boxes: Deque = deque(maxlen=spec.span)  # (frame index, box) of the last span frames
        self.count = 0

    def push(self, index: int, box) -> None:
        self.boxes.append((index, box))
        self.count += 1

    @property
    def full(self) -> bool:
        return self.count >= self.span

    def window(self) -> np.ndarray:
        if not self.full:
            raise RuntimeError("the window is not full yet")
        square = tube([b for _, b in self.boxes])
        newest = self.boxes[-1][0]
        first = newest - self.span + 1
        oldest = self.frames[0][0]
        picked = [self.frames[first - oldest + k * self.spec.stride][1] for k in range(self.spec.frames)]
        clip = np.stack([preprocess_frame(cut(f, square), self.spec) for f in picked])
        return np.ascontiguousarray(clip.transpose(1, 0, 2, 3))


class Targets:
    """What of each frame of one source is classified, each with a buffer of its own: the whole
    frame; named regions (cut out exactly); or tracked people (a square around each box, see
    ``data.regions``), whose buffers are made when a track begins and dropped when it ends.

    ``push(frame)`` -> [(region, track, box, buffer)] of this frame and the tracks that began or ended
    (``(phase, track id, box)``)."""

    def __init__(self, make_buffer, regions: Sequence = (), people=None):
        self.make_buffer, self.regions, self.people = make_buffer, list(regions), people
        self.buffers: Dict = {}
        self.raw: Optional[Deque] = None  # tracked people, clip model: the last span frames as read
        self.tracks: Dict = {}  # tracked people, streaming model: each one's last span boxes
        self.index = -1  # of the newest frame
        self.probe = make_buffer() if people is not None else None  # what kind of buffer, and its span
        self.boxes: Optional[List[Tuple[int, int, int, int]]] = None  # the regions in pixels, from the first frame
        if not self.regions and people is None:
            self.buffers[None] = make_buffer()

    @property
    def span(self) -> int:
        return self.make_buffer().span if not self.buffers else next(iter(self.buffers.values())).span

    def push(self, frame: np.ndarray):
        if self.people is not None:
            tracks, events = self.people(frame)
            for phase, tid, _ in events:
                if phase == "end":
                    self.buffers.pop(tid, None)
                    self.tracks.pop(tid, None)
            probe = self.probe
            streaming = isinstance(probe, FrameBuffer)
            self.index += 1
            if not streaming:
                if self.raw is None:
                    self.raw = deque(maxlen=probe.span)
                self.raw.append((self.index, frame))
            out = []
            for tid, box in sorted(tracks.items()):
                buf = self.buffers.get(tid)
                if buf is None:
                    buf = self.buffers[tid] = self.make_buffer() if streaming else TubeBuffer(probe.spec, self.raw)
                if streaming:  # one frame a step: the square around where they were over the last span frames
                    past = self.tracks.setdefault(tid, deque(maxlen=probe.spec.span))
                    past.append(box)
                    buf.push(cut(frame, tube(list(past))))
                else:
                    buf.push(self.index, box)
                out.append((None, tid, box, buf))
            return out, events
        if not self.regions:
            buf = self.buffers[None]
            buf.push(frame)
            return [(None, None, None, buf)], []
        if self.boxes is None:
            self.boxes = [r.pixels(frame.shape[1], frame.shape[0]) for r in self.regions]
            for r in self.regions:
                self.buffers[r.name] = self.make_buffer()
        out = []
        for r, box in zip(self.regions, self.boxes):
            buf = self.buffers[r.name]
            buf.push(cut(frame, box))
            out.append((r.name, None, box, buf))
        return out, []


@dataclass
class StreamState:
    """Per-source state: the buffer, counters and the capture thread's hand-off slot."""

    uri: str
    targets: Targets
    every: int  # frames between windows handed to the model
    frames: int = 0
    windows: int = 0
    dropped: int = 0
    ended: bool = False
    error: Optional[str] = None
    slot: Optional[List[Window]] = None  # the windows of the newest step the model has not taken
    cond: threading.Condition = field(default_factory=threading.Condition)
    tracks: int = 0  # tracks begun
    # tracks that began or ended, (frame, phase, track id, box), for the app (deque appends are thread-safe)
    track_events: Deque = field(default_factory=deque)
    # every frame as read, for an output video at the source's own rate (None: nobody wants them)
    frames_out: Optional[Deque] = None

    def wake(self) -> None:
        """Wake a capture thread waiting for the model to take its window (at shutdown)."""
        with self.cond:
            self.cond.notify_all()


class Reader:
    """Reads one source: each frame is preprocessed once into the ring, and every ``every``-th
    full window becomes a Window. ``next_window()`` reads until the next one (a file, in the
    loop's own thread); ``Capture`` runs a Reader in a thread of its own (a live source)."""

    def __init__(self, index: int, source, state: StreamState, keep_frame: bool):
        self.index, self.source, self.state, self.keep_frame = index, source, state, keep_frame
        live = getattr(source, "live", False) and not getattr(source, "realtime", False)
        self.wall_clock = live  # a live frame's time is now; a file's, its place in the file
        self.fps = float(getattr(source, "fps", 30.0) or 30.0)

    def read_one(self) -> List[Window]:
        """Read one frame: the windows it completes (one per region or person whose turn it is);
        raises EOFError at the end.

        Whole frames and named regions take a window every ``every`` frames once their buffer is
        full; tracked people on the source's frames divisible by ``every``, so every person's
        window of a step is classified in the same batch."""
        st = self.state
        frame = self.source.read()
        if frame is None:
            raise EOFError
        t = time.perf_counter()
        targets, events = st.targets.push(frame)
        index = st.frames
        st.frames += 1
        for phase, tid, box in events:
            st.tracks += phase == "begin"
            st.track_events.append((self.index, index, phase, tid, box))
        if st.frames_out is not None:
            st.frames_out.append(frame)
        out = []
        src_t = None
        for region, track, box, buf in targets:
            due = (index % st.every == 0) if track is not None else ((buf.count - buf.span) % st.every == 0)
            if not (buf.full and due):
                continue
            if src_t is None:
                src_t = round(time.time() if self.wall_clock else index / self.fps, 3)
            out.append(Window(self.index, index, buf.window(), t, frame if self.keep_frame else None, src_t,
                              region, track, box))
        return out

    def next_window(self) -> List[Window]:
        """Read up to the next step with windows (empty once the source has ended or failed)."""
        st = self.state
        if st.ended:
            return []
        try:
            while True:
                w = self.read_one()
                if w:
                    st.windows += len(w)
                    return w
        except EOFError:
            pass
        except Exception as e:  # a source that gave up: reported by the loop, never a traceback
            st.error = _reason(e)
        st.ended = True
        return []


def _reason(e: BaseException) -> str:
    return str(e) if hasattr(e, "exit_code") else f"{type(e).__name__}: {e}"


class Capture(threading.Thread):
    """A live source's Reader in its own thread: it hands each window to the model through a
    one-window slot, replacing (and counting as dropped) a window the model has not taken yet."""

    def __init__(self, reader: Reader, stop: threading.Event):
        super().__init__(daemon=True, name=f"capture-{reader.index}")
        self.reader, self.state, self.stop = reader, reader.state, stop

    def run(self):
        st = self.state
        try:
            while not self.stop.is_set():
                w = self.reader.read_one()
                if not w:
                    continue
                with st.cond:
                    if st.slot is not None:
                        st.dropped += len(st.slot)
                    st.slot = w
                    st.windows += len(w)
                    st.cond.notify_all()
        except EOFError:
            pass
        except Exception as e:  # a source that gave up: reported by the loop, never a traceback
            st.error = _reason(e)
        finally:
            with st.cond:
                st.ended = True
                st.cond.notify_all()

    @staticmethod
    def take(states: List[StreamState], timeout: float = 0.5) -> List[Window]:
        """The windows ready now (at most one step per source), waiting up to ``timeout`` for one."""
        deadline = time.perf_counter() + timeout
        while True:
            ready = []
            for st in states:
                with st.cond:
                    if st.slot is not None:
                        ready.extend(st.slot)
                        st.slot = None
                        st.cond.notify_all()
            if ready or all(st.ended for st in states) or time.perf_counter() > deadline:
                return ready
            time.sleep(0.002)


class Streams:
    """The app's sources, each read into its own ring: a live one (or a file in ``realtime``) by a
    Capture thread, a file by the loop itself as it takes windows (every window, in order).

    ``Streams.open(uris, ...)`` opens every input once (live ones reconnect on their own);
    ``with streams:`` starts the threads and, on the way out, stops them and closes the sources;
    ``take()`` hands over the windows ready now; ``streaming`` is False once every source ended and
    its last window was taken.
    The classifier says what a window is: a clip of ``spec.frames`` frames, or for a streaming
    student the newest frame alone (it keeps the past in its state), and how often one is taken
    (``clf.cadence(every)``).
    ``keep_frames``: windows carry their newest frame (for the page and the window);
    ``every_frame``: every frame of the first source is kept, in order, for an output video.
    """

    def __init__(self, sources: List, clf, every: int, realtime: bool = False, keep_frames: bool = False,
                 every_frame: bool = False, on_event=None, regions: Optional[Sequence[Sequence]] = None,
                 people=None):
        from ..data.sources import Resilient

        self.sources = list(sources)
        for s in self.sources:  # reconnections are reported with everything else
            if on_event is not None and isinstance(s, Resilient):
                s.on_event = on_event
        self.uris = [getattr(s, "uri", f"source{i}") for i, s in enumerate(self.sources)]
        buffer = FrameBuffer if clf.streaming else ClipBuffer
        self.every = clf.cadence(every)
        self.fps = float(getattr(self.sources[0], "fps", 25.0) or 25.0)
        regions = list(regions) if regions else [[] for _ in self.sources]

        def targets(i: int) -> Targets:
            fps = float(getattr(self.sources[i], "fps", 25.0) or 25.0)
            return Targets(lambda: buffer(clf.spec), regions[i], people(fps) if people is not None else None)

        self.states = [StreamState(u, targets(i), self.every) for i, u in enumerate(self.uris)]
        if every_frame:
            self.states[0].frames_out = deque()
        self._stop = threading.Event()
        readers = [Reader(i, s, st, keep_frames) for i, (s, st) in enumerate(zip(self.sources, self.states))]
        threaded = [bool(getattr(s, "live", False) or realtime) for s in self.sources]
        self.captures = [Capture(r, self._stop) for r, t in zip(readers, threaded) if t]
        self.inline = [r for r, t in zip(readers, threaded) if not t]

    @classmethod
    def open(cls, uris: List[str], clf, every: int, realtime: bool = False, max_retries: int = 0,
             on_event=None, **kw) -> "Streams":
        """Open every input once (live ones reconnect on their own) and make the streams of ``clf``.

        Args:
            uris: the inputs.
            clf: the classifier (what a window is and how often: its spec and cadence).
            every: classify every N frames (a clip model's).
            realtime: play files at their own rate, as cameras.
            max_retries: give up on a lost camera after this many failed reopenings (0: never).
            on_event: what reconnections are reported to.

        Returns:
            Streams.
        """
        from ..core.errors import SourceError
        from ..data.sources import open_input

        if not uris:
            raise SourceError("no input: give --input URI (/dev/video0, csi://0, rtsp://..., a file, synthetic://)")
        opened = []
        try:
            for uri in uris:
                opened.append(open_input(uri, realtime, max_retries, on_event))
        except BaseException:
            for s in opened:
                s.close()
            raise
        return cls(opened, clf, every, realtime, on_event=on_event, **kw)

    def __enter__(self) -> "Streams":
        for c in self.captures:
            c.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def take(self, timeout: float = 0.5) -> List[Window]:
        """The next window of every file, and the windows the live sources have ready (waiting up
        to ``timeout`` for one where no file gave any)."""
        ready = [w for r in self.inline for w in r.next_window()]
        live = [c.state for c in self.captures]
        if live:
            ready += Capture.take(live, 0.0 if ready else timeout)
        return sorted(ready, key=lambda w: w.source)

    @property
    def streaming(self) -> bool:
        """True while a source is still reading or a window is still waiting to be taken."""
        return any(not st.ended or st.slot is not None for st in self.states)

    def track_events(self) -> List[Tuple]:
        """Tracks that began or ended since the last call: (source, frame, phase, track id, box)."""
        out = []
        for st in self.states:
            while st.track_events:
                out.append(st.track_events.popleft())
        return out

    @property
    def span(self) -> int:
        """Frames one window covers."""
        return self.states[0].targets.span

    @property
    def dropped(self) -> List[int]:
        """Windows each source replaced before the model took them."""
        return [st.dropped for st in self.states]

    def new_frames(self) -> List[np.ndarray]:
        """The first source's frames read since the last call (``every_frame``), oldest first."""
        q = self.states[0].frames_out
        out = []
        while q:
            out.append(q.popleft())
        return out

    def close(self) -> None:
        self._stop.set()
        for st in self.states:
            st.wake()
        for c in self.captures:
            if c.is_alive():
                c.join(timeout=2)
        for s in self.sources:
            try:
                s.close()
            except Exception:  # a source already gone: nothing left to release
                pass


def topk(probs: np.ndarray, classes: List[str], k: int = 3) -> List[dict]:
    idx = np.argsort(-probs)[:k]
    return [{"label": classes[i], "score": round(float(probs[i]), 6)} for i in idx]
