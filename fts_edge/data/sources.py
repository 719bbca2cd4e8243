"""Frame sources by URI, as people know them from jetson-inference:

  /dev/video0, v4l2://0      a V4L2 camera
  csi://0                    a Jetson CSI camera (GStreamer nvarguscamerasrc; needs OpenCV with GStreamer)
  rtsp://host/stream         a network camera (H.264; rtsp://...#codec=h265 for H.265)
  file://clip.mp4, clip.mp4  a video file
  synthetic://[?seed=S&size=N&fps=F]   the motion dataset rendered live (no camera needed)

Every source yields uint8 RGB frames (H, W, 3). Live sources that stop answering are reopened
with backoff (``Resilient``); a file ends the run cleanly at its end.

Network streams and H.264/H.265 files are decoded by the Jetson's hardware decoder where OpenCV
has GStreamer and GStreamer has ``nvv4l2decoder`` (the pipelines jetson-utils builds for the same
URIs, ending in BGR frames for OpenCV's appsink); elsewhere, or when such a pipeline does not open,
by OpenCV's FFmpeg backend. ``decode_path`` says which a source takes (``fts-edge doctor`` too).
"""
from __future__ import annotations

import logging
import os
import time
from typing import Dict, Iterator, Optional, Tuple
from urllib.parse import parse_qs, urlparse

import numpy as np

from ..core.errors import SourceError

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
log = logging.getLogger(__name__)


class Source:
    """A frame source. ``read()`` returns an RGB frame, or None at the end of a file; it raises
    SourceError when a device stops answering."""

    live = False
    uri = ""
    fps = 30.0

    def read(self) -> Optional[np.ndarray]:
        raise NotImplementedError

    def close(self):
        pass

    def frames(self) -> Iterator[np.ndarray]:
        while True:
            f = self.read()
            if f is None:
                return
            yield f


class CaptureSource(Source):
    """Anything OpenCV's VideoCapture opens: files, V4L2 devices, RTSP, GStreamer pipelines."""

    def __init__(self, uri: str, target, api: Optional[int] = None, live: bool = False, realtime: bool = False):
        import cv2

        self.uri, self.live, self.realtime = uri, live, realtime
        self.cap = cv2.VideoCapture(target, api) if api is not None else cv2.VideoCapture(target)
        if not self.cap.isOpened():
            self.cap.release()
            raise SourceError(f"{uri}: cannot open it" + (" (is the camera connected, and not used by another program?)"
                                                          if live else ""))
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 1 <= fps <= 240 else 30.0
        self._next_t = None
        self.read_count = 0
        self.declared = 0 if live else int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)

    def read(self):
        import cv2

        if self.realtime and not self.live:  # play a file at its own frame rate
            now = time.perf_counter()
            if self._next_t is None:
                self._next_t = now
            if self._next_t > now:
                time.sleep(self._next_t - now)
            self._next_t += 1.0 / self.fps
        ok, frame = self.cap.read()
        if not ok or frame is None:
            if self.live:
                raise SourceError(f"{self.uri}: stopped delivering frames")
            from .video import TRUNCATION_TOLERANCE
            if self.declared > 0 and self.read_count < TRUNCATION_TOLERANCE * self.declared:
                raise SourceError(f"{self.uri}: truncated or damaged: {self.read_count} of {self.declared} declared "
                                  "frames decode")
            return None
        self.read_count += 1
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def close(self):
        self.cap.release()


class SyntheticSource(Source):
    """The motion dataset rendered live: a sequence of clips of every class in turn."""

    live = True

    def __init__(self, uri: str = "synthetic://", seed: int = 0, size: int = 128, fps: float = 25.0,
                 clip_frames: int = 40, realtime: bool = False, max_frames: Optional[int] = None):
        self.uri, self.seed, self.size, self.fps = uri, seed, size, fps
        self.clip_frames, self.realtime, self.max_frames = clip_frames, realtime, max_frames
        self.i, self._clip, self._label, self._next_t = 0, None, -1, None

    def read(self):
        from .synthetic import MOTION_CLASSES, render_clip

        if self.max_frames is not None and self.i >= self.max_frames:
            return None
        if self.realtime:
            now = time.perf_counter()
            self._next_t = self._next_t or now
            if self._next_t > now:
                time.sleep(self._next_t - now)
            self._next_t += 1.0 / self.fps
        k, j = divmod(self.i, self.clip_frames)
        if j == 0:
            self._label = k % len(MOTION_CLASSES)
            self._clip = render_clip(self._label, self.seed, k, self.clip_frames, self.size, self.size)
        self.i += 1
        return self._clip[j]


def has_gstreamer() -> bool:
    import re

    import cv2
    return re.search(r"GStreamer:\s*YES", cv2.getBuildInformation()) is not None


def csi_pipeline(sensor: int = 0, width: int = 1280, height: int = 720, fps: int = 30) -> str:
    """GStreamer pipeline for a Jetson CSI camera, ending in BGR frames for OpenCV's appsink."""
    return (f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM), width={width}, height={height}, "
            f"framerate={fps}/1 ! nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! video/x-raw, format=BGR ! "
            "appsink drop=true max-buffers=1 sync=false")


RTSP_LATENCY_MS = 2000  # what rtspsrc buffers: jetson-utils' default (--input-rtsp-latency)
HW_DECODER = "nvv4l2decoder"  # the Jetson's hardware video decoder in GStreamer (JetPack 5 and 6)
_DEPAY_PARSE = {"h264": ("rtph264depay", "h264parse"), "h265": ("rtph265depay", "h265parse")}
_DEMUX = {".mkv": "matroskademux", ".webm": "matroskademux", ".mp4": "qtdemux", ".mov": "qtdemux", ".qt": "qtdemux",
          ".flv": "flvdemux", ".avi": "avidemux"}
_FOURCC_CODEC = {"avc1": "h264", "h264": "h264", "x264": "h264", "hev1": "h265", "hvc1": "h265", "hevc": "h265",
                 "h265": "h265"}
# decoded NVMM frames to system memory (nvvidconv), then BGR for OpenCV; the newest frame only
_TO_OPENCV = ("video/x-raw(memory:NVMM) ! nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! "
              "video/x-raw, format=BGR ! appsink sync=false")


def _gst_value(text: str) -> str:
    """A property value for gst_parse_launch: quoted where it has spaces or separators."""
    if any(c in text for c in ' !"=,;()'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def rtsp_pipeline(uri: str, codec: str = "h264", latency_ms: int = RTSP_LATENCY_MS) -> str:
    """GStreamer pipeline decoding an RTSP stream with the hardware decoder: jetson-utils' chain
    (rtspsrc, queue, depayloader, parser, nvv4l2decoder) ending in BGR frames for OpenCV."""
    depay, parse = _DEPAY_PARSE[codec]
    return (f"rtspsrc location={_gst_value(uri)} latency={int(latency_ms)} ! queue ! {depay} ! {parse} ! "
            f"{HW_DECODER} enable-max-performance=1 ! {_TO_OPENCV} drop=true max-buffers=1")


def file_pipeline(path: str, codec: str = "h264") -> Optional[str]:
    """GStreamer pipeline decoding a video file with the hardware decoder: jetson-utils' chain
    (filesrc, the container's demuxer, queue, parser, nvv4l2decoder) ending in BGR frames for
    OpenCV, every frame kept; None for a container it has no demuxer for."""
    demux = _DEMUX.get(os.path.splitext(path)[1].lower())
    if demux is None:
        return None
    return (f"filesrc location={_gst_value(path)} ! {demux} ! queue ! {_DEPAY_PARSE[codec][1]} ! "
            f"{HW_DECODER} enable-max-performance=1 ! {_TO_OPENCV}")


_ELEMENTS: dict = {}


def gst_element_exists(name: str) -> bool:
    """Whether GStreamer has the element (``gst-inspect-1.0 --exists``), remembered per process."""
    if name not in _ELEMENTS:
        import shutil
        import subprocess

        tool = shutil.which("gst-inspect-1.0")
        try:
            _ELEMENTS[name] = bool(tool) and subprocess.run([tool, "--exists", name], capture_output=True,
                                                            timeout=20).returncode == 0
        except (OSError, subprocess.SubprocessError):
            _ELEMENTS[name] = False
    return _ELEMENTS[name]


def hardware_decoding() -> Tuple[bool, str]:
    """Whether rtsp:// and H.264/H.265 files can be decoded in hardware here, and why not."""
    try:
        if not has_gstreamer():
            return False, "OpenCV has no GStreamer (pip's OpenCV; the Jetson's system OpenCV has it)"
    except ImportError:
        return False, "OpenCV is not installed"
    if not gst_element_exists(HW_DECODER):
        return False, f"GStreamer has no {HW_DECODER} (not a Jetson, or its multimedia packages are missing)"
    return True, f"{HW_DECODER} through GStreamer"


def _file_codec(path: str) -> Optional[str]:
    import cv2

    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    try:
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)) if cap.isOpened() else 0
    finally:
        cap.release()
    tag = "".join(chr((fourcc >> 8 * i) & 0xFF) for i in range(4)).strip().lower()
    return _FOURCC_CODEC.get(tag)


def decode_path(uri: str) -> Dict:
    """How a source's frames will be decoded: {"decoder": "hardware" or "ffmpeg", "pipeline": the
    GStreamer pipeline or None, "why": the reason}. Cameras, CSI and synthetic:// are not decoded
    here (``decoder`` None)."""
    uri = str(uri)
    u = urlparse(uri)
    if uri.startswith("/dev/video") or u.scheme in ("v4l2", "csi", "synthetic"):
        return {"decoder": None, "pipeline": None, "why": "not a compressed stream"}
    ok, why = hardware_decoding()
    if u.scheme in ("rtsp", "rtsps"):
        codec = parse_qs(u.fragment).get("codec", ["h264"])[0].lower()
        if codec not in _DEPAY_PARSE:
            raise SourceError(f"{uri}: #codec={codec}: the hardware path takes h264 or h265")
        if ok:
            return {"decoder": "hardware", "pipeline": rtsp_pipeline(uri.split("#")[0], codec), "why": why}
        return {"decoder": "ffmpeg", "pipeline": None, "why": why}
    if u.scheme in ("http", "https", "rtmp"):
        return {"decoder": "ffmpeg", "pipeline": None, "why": f"{u.scheme}:// is read by FFmpeg"}
    path = uri[len("file://"):] if u.scheme == "file" else uri
    if not ok:
        return {"decoder": "ffmpeg", "pipeline": None, "why": why}
    codec = _file_codec(path)
    pipe = file_pipeline(path, codec) if codec else None
    if pipe is None:
        return {"decoder": "ffmpeg", "pipeline": None,
                "why": "not H.264/H.265 in MP4/MOV/MKV/WebM/AVI/FLV" if codec is None else "no demuxer for it"}
    return {"decoder": "hardware", "pipeline": pipe, "why": why}


def _capture(uri: str, target, live: bool, realtime: bool) -> "CaptureSource":
    """A network stream or a file: through the hardware-decoding pipeline where there is one, and
    through FFmpeg where there is none or it does not open (said once)."""
    import cv2

    path = decode_path(uri)
    if path["decoder"] == "hardware":
        try:
            return CaptureSource(uri, path["pipeline"], cv2.CAP_GSTREAMER, live=live, realtime=realtime)
        except SourceError:
            log.warning("%s: the hardware-decoding pipeline did not open; decoding with FFmpeg", uri)
    return CaptureSource(uri, target, cv2.CAP_FFMPEG, live=live, realtime=realtime)


def open_source(uri: str, realtime: bool = False) -> Source:
    import cv2

    uri = str(uri)
    u = urlparse(uri)
    if uri.startswith("/dev/video") or u.scheme == "v4l2":
        num = uri[len("/dev/video"):] if uri.startswith("/dev/video") else (u.netloc or u.path.strip("/") or "0")
        if not num.isdigit():
            raise SourceError(f"{uri}: not a camera device (use /dev/videoN or v4l2://N)")
        index = int(num)
        if uri.startswith("/dev/video") and not os.path.exists(uri):
            raise SourceError(f"{uri}: no such camera device (ls /dev/video* lists the ones there are)")
        return CaptureSource(uri, index, cv2.CAP_V4L2, live=True)
    if u.scheme == "csi":
        if not has_gstreamer():
            raise SourceError(f"{uri}: CSI cameras need OpenCV built with GStreamer (the Jetson's system OpenCV; "
                              "pip's opencv has none) - see jetson/install.sh")
        return CaptureSource(uri, csi_pipeline(int(u.netloc or 0)), cv2.CAP_GSTREAMER, live=True)
    if u.scheme in ("rtsp", "rtsps", "http", "https", "rtmp"):
        return _capture(uri, uri.split("#")[0], live=True, realtime=False)
    if u.scheme == "synthetic":
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        try:
            seed, size, fps = int(q.get("seed", 0)), int(q.get("size", 128)), float(q.get("fps", 25))
            frames = int(q["frames"]) if "frames" in q else None
        except ValueError:
            raise SourceError(f"{uri}: synthetic:// takes ?seed=N&size=N&fps=X&frames=N (numbers)") from None
        if not (16 <= size <= 2048 and 1 <= fps <= 240 and seed >= 0 and (frames is None or frames >= 1)):
            raise SourceError(f"{uri}: size from 16 to 2048, fps from 1 to 240, seed and frames not negative")
        return SyntheticSource(uri, seed=seed, size=size, fps=fps, realtime=realtime, max_frames=frames)
    path = uri[len("file://"):] if u.scheme == "file" else uri
    if not os.path.exists(path):
        raise SourceError(f"{path}: no such file")
    return _capture(uri, path, live=False, realtime=realtime)


class Resilient(Source):
    """Wraps a live source: when it fails, reopen it with exponential backoff and say so; give up
    after ``max_retries`` consecutive failed reopenings (0: never give up)."""

    def __init__(self, opener, uri: str, max_retries: int = 0, backoff: float = 0.5, max_backoff: float = 10.0,
                 on_event=None, first: Optional[Source] = None):
        self.opener, self.uri, self.max_retries = opener, uri, max_retries
        self.backoff, self.max_backoff = backoff, max_backoff
        self.on_event = on_event or (lambda event: None)
        self.src = first if first is not None else opener()
        self.live, self.fps = self.src.live, self.src.fps
        self.reconnects = 0

    def read(self):
        try:
            return self.src.read()
        except (SourceError, OSError, RuntimeError) as e:
            if not self.live:
                raise SourceError(f"{self.uri}: {e}") if not isinstance(e, SourceError) else e
            return self._reopen(e)

    def _reopen(self, error):
        self.on_event({"type": "source_lost", "source": self.uri, "reason": str(error)})
        log.warning("%s: lost (%s); reopening", self.uri, error)
        try:
            self.src.close()
        except Exception:
            pass
        delay, attempt = self.backoff, 0
        while True:
            attempt += 1
            time.sleep(delay)
            try:
                self.src = self.opener()
                self.reconnects += 1
                self.on_event({"type": "source_back", "source": self.uri, "attempts": attempt})
                log.warning("%s: back after %d attempt(s)", self.uri, attempt)
                return self.src.read()
            except (SourceError, OSError, RuntimeError) as e:
                if self.max_retries and attempt >= self.max_retries:
                    raise SourceError(f"{self.uri}: gone, {attempt} reopening attempts failed (last: {e})")
                delay = min(delay * 2, self.max_backoff)

    def close(self):
        self.src.close()


def open_input(uri: str, realtime: bool = False, max_retries: int = 0, on_event=None) -> Source:
    """Open ``uri`` once; a live source comes back wrapped to reconnect (``Resilient``), reporting
    its losses and returns to ``on_event``."""
    src = open_source(uri, realtime)
    if not src.live:
        return src
    return Resilient(lambda: open_source(uri, realtime), uri, max_retries, on_event=on_event, first=src)
