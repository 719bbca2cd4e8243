"""Preprocessed clips for checks and calibration: from the dataset a model was trained on, a video
file, or a live source (the deployment camera itself). Every clip goes through the one
preprocessing the camera applies (``transforms.preprocess_clip`` / ``preprocess_frame``).

Imports no torch, so the device half calibrates and verifies with it.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from ..core.errors import ExportError, FtsError
from .clipspec import ClipSpec

log = logging.getLogger(__name__)


def dataset_index_from_meta(meta: Dict):
    """The dataset index a bundle was trained on (same layout, split and seed), or None where it
    is not reachable on this machine."""
    from .datasets import index_from_settings

    d = meta.get("dataset") or {}
    if not d.get("dataset"):
        return None
    try:
        return index_from_settings(d)
    except FtsError as e:
        log.warning("the training dataset is not reachable here (%s)", e)
        return None


def video_clips(path, spec: ClipSpec, n: int) -> np.ndarray:
    """``n`` clips spread evenly over a video file (fewer if it is short)."""
    from .transforms import preprocess_clip, sample_indices
    from .video import read_frames

    frames = read_frames(path, max_frames=max(spec.span * n * 4, spec.span), resize_short=spec.resize, strict=False)
    n = max(1, min(n, len(frames) // max(1, spec.span) or 1))
    return np.stack([preprocess_clip(frames[ix], spec) for ix in sample_indices(len(frames), spec, "multi",
                                                                                   num_clips=n)]).astype(np.float32)


def source_clips(uri: str, spec: ClipSpec, n: int) -> np.ndarray:
    """``n`` clips from any input the camera takes: a video file (spread over it) or a live source
    (/dev/videoN, csi://N, rtsp://...: consecutive windows of frames as they arrive)."""
    from .sources import open_source
    from .transforms import preprocess_frame

    if Path(uri).is_file() or uri.startswith("file://"):
        return video_clips(uri[len("file://"):] if uri.startswith("file://") else uri, spec, n)
    src = open_source(uri)
    frames = []
    try:
        for frame in src.frames():
            frames.append(preprocess_frame(frame, spec))
            if len(frames) >= n * spec.frames:
                break
    finally:
        src.close()
    if len(frames) < spec.frames:
        raise ExportError(f"{uri}: only {len(frames)} frames captured, one clip needs {spec.frames}")
    k = len(frames) // spec.frames
    return np.stack([np.stack(frames[i * spec.frames:(i + 1) * spec.frames], 1) for i in range(k)]).astype(np.float32)


def rendered_clips(spec: ClipSpec, n: int, seed: int = 0) -> np.ndarray:
    """Clips of the procedural motion dataset (real moving pictures, drawn here): for numerical
    parity checks where the user gave no footage. Never used to calibrate or to judge INT8."""
    from .synthetic import MOTION_CLASSES, render_clip
    from .transforms import preprocess_clip, sample_indices

    out = []
    for i in range(n):
        frames = render_clip(i % len(MOTION_CLASSES), seed, i, max(16, spec.span + 4), spec.resize, spec.resize)
        (ix,) = sample_indices(len(frames), spec, "center")
        out.append(preprocess_clip(frames[ix], spec))
    return np.stack(out).astype(np.float32)


def check_clips(spec: ClipSpec, meta: Optional[Dict] = None, video: Optional[str] = None, n_dataset: int = 16,
                n_video: int = 4, rendered: bool = True) -> np.ndarray:
    """Clips for a conversion check: the validation split the model was trained for (where
    reachable) and ``video``; with neither, motion clips drawn here (``rendered``) or an error.

    Args:
        spec: the clip geometry and normalisation.
        meta: the model's bundle (its ``dataset`` names the split), or None.
        video: a video file or camera URI, or None.
        n_dataset, n_video: clips from the split and from the video.
        rendered: fall back to drawn motion clips where neither is there (else ExportError).

    Returns:
        float32 clips (N, 3, T, S, S).
    """
    from .datasets import centre_clips

    clips = []
    index = dataset_index_from_meta(meta) if meta else None
    if index is not None:
        found, _ = centre_clips(index.test, spec, n_dataset)
        clips.extend(found if found is not None else [])
    if video:
        clips.extend(source_clips(video, spec, n_video))
    if not clips:
        if not rendered:
            raise ExportError("no clips to check on: pass --input VIDEO (or a camera, e.g. /dev/video0)")
        return rendered_clips(spec, 4)
    return np.stack(clips).astype(np.float32)


def calibration_clips(spec: ClipSpec, meta: Dict, calib_data: Optional[str], calib_input: Optional[str], n: int,
                      seed: int = 0) -> np.ndarray:
    """Clips for INT8 calibration: a video or camera (``calib_input``), a folder of videos, or the
    training split the bundle names. Never noise: with none of them it is an error.

    Args:
        spec: the clip geometry and normalisation.
        meta: the model's bundle (its ``dataset`` names the training split).
        calib_data: a folder of videos, or None.
        calib_input: a video or camera URI, or None.
        n: clips wanted.
        seed: the draw from the training split.

    Returns:
        float32 clips (N, 3, T, S, S).
    """
    from .datasets import centre_clips, folder_index

    if calib_input:
        return source_clips(calib_input, spec, n)
    index = folder_index(calib_data) if calib_data else dataset_index_from_meta(meta)
    if index is None:
        raise ExportError("no calibration data: the training dataset is not on this machine; pass --calib-input "
                          "VIDEO or a camera (e.g. /dev/video0), or --calib-data DIR")
    rng = np.random.default_rng(seed)
    clips, _ = centre_clips([index.train[i] for i in rng.permutation(len(index.train))], spec, limit=n)
    if clips is None:
        raise ExportError("no readable calibration clips in the training split")
    return clips


def validation_set(spec: ClipSpec, meta: Dict, limit: int = 200) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """(clips, labels) of the validation split for accuracy checks, or (None, None)."""
    from .datasets import centre_clips

    index = dataset_index_from_meta(meta)
    if index is None:
        return None, None
    clips, labels = centre_clips(index.test, spec, limit)
    return (clips, labels) if clips is not None else (None, None)
