"""Decoding videos into uint8 RGB frames, trusting only what really decodes.

A container's declared frame count and fps are hints: we count the frames that decode. The
declared count is used once, to notice truncation: a file that declares far more frames than it
yields has lost its tail, and is reported rather than silently used.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

# FFmpeg prints decoder complaints straight to stderr; we report errors ourselves, in one line.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
import cv2  # noqa: E402

from ..core.errors import VideoError  # noqa: E402,F401  (re-exported: fts_edge.video.VideoError)

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv")

# A file that decodes fewer than this fraction of its declared frames is truncated.
TRUNCATION_TOLERANCE = 0.9


def _open(path) -> "cv2.VideoCapture":
    p = Path(path)
    if not p.exists():
        raise VideoError(f"{p}: no such file")
    if p.is_dir():
        raise VideoError(f"{p}: is a folder, not a video")
    if p.stat().st_size == 0:
        raise VideoError(f"{p}: empty file")
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"{p}: not a readable video (no decoder could open it)")
    return cap


def read_frames(path, max_frames: Optional[int] = None, strict: bool = True,
                resize_short: Optional[int] = None) -> np.ndarray:
    """Decode a video to a uint8 array (T, H, W, 3), RGB.

    T is the number of frames that really decode. With ``strict`` (the default), a file that
    yields fewer than 90% of the frames its container declares is truncated and raises
    VideoError; so do missing, empty and non-video files. ``resize_short`` scales each frame so
    its short side has that length (saves memory on long videos).
    """
    cap = _open(path)
    declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    frames = []
    try:
        while max_frames is None or len(frames) < max_frames:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            if resize_short:
                frame = resize_short_side(frame, resize_short)
            frames.append(frame)
    finally:
        cap.release()
    if not frames:
        raise VideoError(f"{path}: no frame decodes")
    wanted = declared if max_frames is None else min(declared, max_frames)
    if strict and declared > 0 and len(frames) < TRUNCATION_TOLERANCE * wanted:
        raise VideoError(f"{path}: truncated or damaged: {len(frames)} of {declared} declared frames decode")
    return np.stack(frames)


class ShortVideo(VideoError):
    """The video ended before a frame that was asked for: ``frames`` is how many really decode."""

    def __init__(self, message: str, frames: int):
        super().__init__(message)
        self.frames = frames


# Frames before the first one wanted are skipped by grab() (no colour conversion, no copy); past
# this many, the reader seeks instead (checked: the position it lands on must be the frame asked
# for, else it reads from the start).
SEEK_AFTER = 48


def declared_frames(path) -> int:
    """The frame count the container declares (0 where it declares none): a hint, never the truth."""
    cap = _open(path)
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()


def read_frames_at(path, indices, resize_short: Optional[int] = None) -> np.ndarray:
    """uint8 RGB frames (len(indices), H, W, 3) of the given frame indices (any order, repeats
    allowed), decoding only up to the largest: the clip's frames of a long video, not the video.

    Frames before the first index are skipped with grab(); a first index past SEEK_AFTER is reached
    by seeking where the container lands exactly on it. Raises ShortVideo (with the number of
    frames that do decode) where the video ends before the largest index, VideoError where it
    cannot be read at all."""
    idx = np.asarray(indices, dtype=np.int64)
    wanted = sorted(set(int(i) for i in idx))
    if not wanted or wanted[0] < 0:
        raise ValueError(f"frame indices must be 0 or more, got {idx.tolist()}")
    cap = _open(path)
    got = {}
    try:
        pos = 0
        if wanted[0] > SEEK_AFTER:
            cap.set(cv2.CAP_PROP_POS_FRAMES, wanted[0])
            if int(cap.get(cv2.CAP_PROP_POS_FRAMES)) == wanted[0]:
                pos = wanted[0]
            else:  # the container could not land on the frame: from the start, frame by frame
                cap.release()
                cap = _open(path)
        for target in wanted:
            while pos < target:
                if not cap.grab():
                    raise ShortVideo(f"{path}: {pos} frames decode, frame {target} was asked for", pos)
                pos += 1
            ok, frame = cap.read()
            if not ok or frame is None:
                raise ShortVideo(f"{path}: {pos} frames decode, frame {target} was asked for", pos)
            pos += 1
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            got[target] = resize_short_side(frame, resize_short) if resize_short else frame
    finally:
        cap.release()
    return np.stack([got[int(i)] for i in idx])


def probe(path) -> dict:
    """What a video really holds: decoded frame count, size, and the container's declared values."""
    cap = _open(path)
    declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    n, shape = 0, None
    try:
        while True:
            ok = cap.grab()
            if not ok:
                break
            n += 1
            if shape is None:
                ok, frame = cap.retrieve()
                shape = frame.shape if ok and frame is not None else None
    finally:
        cap.release()
    if n == 0 or shape is None:
        raise VideoError(f"{path}: no frame decodes")
    return {"frames": n, "declared_frames": declared, "fps": fps, "height": shape[0], "width": shape[1]}


def resize_short_side(frame: np.ndarray, short: int) -> np.ndarray:
    h, w = frame.shape[:2]
    if min(h, w) == short:
        return frame
    if h <= w:
        nh, nw = short, max(1, round(w * short / h))
    else:
        nh, nw = max(1, round(h * short / w)), short
    interp = cv2.INTER_AREA if short < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(frame, (nw, nh), interpolation=interp)


def write_video(path, frames: np.ndarray, fps: float = 25.0, codec: str = "MJPG") -> None:
    """Write uint8 RGB frames (T, H, W, 3) to a video file atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"write_video wants uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), fps, (frames.shape[2], frames.shape[1]))
    if not writer.isOpened():
        raise VideoError(f"{path}: cannot open a {codec} writer")
    try:
        for f in frames:
            writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    os.replace(tmp, path)
