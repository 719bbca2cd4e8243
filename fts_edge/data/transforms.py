"""The one preprocessing path shared by training, calibration, export checks and the camera app.

Evaluation preprocessing of a clip is *defined* as the per-frame function applied to each frame,
so the camera app (which preprocesses each frame once, as it arrives) and offline evaluation
produce identical tensors, frame for frame.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from .clipspec import ClipSpec
from .video import resize_short_side


def sample_indices(num_frames: int, spec: ClipSpec, mode: str = "center",
                   rng: Optional[np.random.Generator] = None, num_clips: int = 1) -> List[np.ndarray]:
    """Frame indices of clips of ``spec.frames`` frames, ``spec.stride`` apart.

    mode: "random" (one clip at a random start: training), "center" (one centred clip),
    "multi" (``num_clips`` starts spread evenly over the video: testing).
    Videos shorter than a clip are looped, so every clip has exactly ``spec.frames`` indices.

    Args:
        num_frames: frames the video has.
        spec: the clip geometry (frames, stride).
        mode: random, center or multi.
        rng: the generator of random starts (training).
        num_clips: clips of ``multi``.

    Returns:
        A list of index arrays, one per clip, each of ``spec.frames`` indices.
    """
    if num_frames < 1:
        raise ValueError("a video with no frames has no clips")
    span = spec.span
    room = max(0, num_frames - span)
    if mode == "random":
        rng = rng or np.random.default_rng()
        starts = [int(rng.integers(0, room + 1))]
    elif mode == "center":
        starts = [room // 2]
    elif mode == "multi":
        starts = [room // 2] if num_clips == 1 else [round(i * room / (num_clips - 1)) for i in range(num_clips)]
    else:
        raise ValueError(f"unknown sampling mode {mode!r} (random, center, multi)")
    base = np.arange(spec.frames) * spec.stride
    return [(s + base) % num_frames for s in starts]


def _crop_box(h: int, w: int, size: int, rng: Optional[np.random.Generator]):
    if h < size or w < size:
        raise ValueError(f"frame {h}x{w} is smaller than the crop {size}")
    if rng is None:
        return (h - size) // 2, (w - size) // 2
    return int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))


# rgb_illumination "normalize": the most a frame's brightness is raised, so a covered lens or a
# black frame is not blown up into noise
MAX_LIGHT_GAIN = 8.0


def light_gain(crop: np.ndarray, spec: ClipSpec) -> float:
    """The factor that brings one frame's crop (H, W, 3), values 0-255, to the mean brightness of
    the normalisation's mean (``rgb_illumination`` "normalize"), at most MAX_LIGHT_GAIN. A change
    of light that scales the whole frame (flicker, exposure) leaves the scaled frame as it was."""
    target = 255.0 * float(np.mean(spec.mean))
    return target / max(float(crop.mean(dtype=np.float64)), target / MAX_LIGHT_GAIN)


def _normalise(crop: np.ndarray, spec: ClipSpec) -> np.ndarray:
    mean = np.asarray(spec.mean, np.float32) * 255.0
    inv_std = 1.0 / (np.asarray(spec.std, np.float32) * 255.0)
    f = crop.astype(np.float32)
    if spec.rgb_illumination == "normalize":
        f *= np.float32(light_gain(crop, spec))
    return ((f - mean) * inv_std).transpose(2, 0, 1)


def preprocess_frame(frame: np.ndarray, spec: ClipSpec) -> np.ndarray:
    """One uint8 RGB frame (H, W, 3) -> float32 (3, size, size): resize short side, centre crop, normalise."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB frame (H, W, 3), got shape {frame.shape}")
    f = resize_short_side(frame, spec.resize)
    y, x = _crop_box(f.shape[0], f.shape[1], spec.size, None)
    return _normalise(f[y:y + spec.size, x:x + spec.size], spec)


def preprocess_clip(frames: np.ndarray, spec: ClipSpec, train: bool = False,
                    rng: Optional[np.random.Generator] = None, flip: bool = True) -> np.ndarray:
    """uint8 RGB frames (T, H, W, 3) -> float32 (3, T, size, size).

    Evaluation: each frame through ``preprocess_frame``. Training: one random crop position and
    (if ``flip``) one random horizontal flip for the whole clip, so motion stays coherent. Turn
    ``flip`` off where direction is the class (the motion dataset's left/right).

    Args:
        frames: uint8 RGB (T, H, W, 3).
        spec: the one geometry and normalisation.
        train: random crop (and flip) rather than the centre.
        rng: the generator of the crop and flip (training).
        flip: allow the horizontal flip.

    Returns:
        float32 (3, T, spec.size, spec.size).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames (T, H, W, 3), got shape {frames.shape}")
    if not train:
        return np.stack([preprocess_frame(f, spec) for f in frames], axis=1)
    rng = rng or np.random.default_rng()
    resized = np.stack([resize_short_side(f, spec.resize) for f in frames])
    geometry = clip_geometry(resized.shape[1], resized.shape[2], spec, True, rng, flip)
    return crop_clip(resized, geometry, spec)


def denormalise(clip, spec: ClipSpec):
    """Inverse of the normalisation, for pictures and for the flow teacher: back to [0, 255] RGB
    (under ``rgb_illumination`` "normalize", the frames as brought to one brightness).

    Works on numpy arrays or torch tensors shaped (..., 3, T, H, W).
    """
    shape = (3, 1, 1, 1)
    mean = np.asarray(spec.mean, np.float32).reshape(shape) * 255.0
    std = np.asarray(spec.std, np.float32).reshape(shape) * 255.0
    if hasattr(clip, "new_tensor"):
        return clip * clip.new_tensor(std) + clip.new_tensor(mean)
    return clip * std + mean


def clip_geometry(h: int, w: int, spec: ClipSpec, train: bool, rng: Optional[np.random.Generator],
                  flip: bool = True):
    """The crop (y, x) and flip of one clip from frames of h x w (already at spec.resize).
    Evaluation: the centre, no flip. Shared by RGB frames and their cached flow.

    Args:
        h, w: the frames' size (already at spec.resize).
        spec: the crop size.
        train: random rather than centred.
        rng: the generator (training).
        flip: allow the horizontal flip.

    Returns:
        (y, x, flipped).
    """
    if not train:
        y, x = _crop_box(h, w, spec.size, None)
        return y, x, False
    y, x = _crop_box(h, w, spec.size, rng)
    return y, x, bool(flip and rng.integers(0, 2))


def crop_flow(flow: np.ndarray, indices: np.ndarray, geometry, spec: ClipSpec) -> np.ndarray:
    """Flow of a clip from a video's cached flow (T_video, 2, H, W), entry t being the flow from
    frame t to frame (t + spec.stride) % T_video (the flow store's, ``flow.store``):
    the entries of the clip's frames but its last, which are exactly its consecutive pairs,
    cropped and flipped like the frames (a mirror negates x). Returns float32 (2, T-1, size, size)."""
    y, x, flip = geometry
    n = flow.shape[0]
    indices = np.asarray(indices)
    if not np.array_equal(indices[1:], (indices[:-1] + spec.stride) % n):
        raise ValueError(f"the clip's frames {indices.tolist()} are not {spec.stride} apart in a video of "
                         f"{n} frames: cached flow of another video")
    # crop before converting: only the clip's pairs and the crop's pixels become float32
    return orient_flow(flow[indices[:-1], :, y:y + spec.size, x:x + spec.size], flip)


def orient_flow(pairs: np.ndarray, flip: bool) -> np.ndarray:
    """A clip's cropped flow pairs (T-1, 2, S, S) as the network takes them, float32
    (2, T-1, S, S), mirrored where the frames are (a mirror negates x)."""
    f = pairs.astype(np.float32).transpose(1, 0, 2, 3)
    if flip:
        f = f[:, :, :, ::-1].copy()
        f[0] = -f[0]
    return np.ascontiguousarray(f)


def crop_clip(frames: np.ndarray, geometry, spec: ClipSpec) -> np.ndarray:
    """Frames already at spec.resize (T, H, W, 3) -> normalised float32 (3, T, size, size)."""
    y, x, flip = geometry
    c = frames[:, y:y + spec.size, x:x + spec.size]
    if flip:
        c = c[:, :, ::-1]
    return np.stack([_normalise(f, spec) for f in c], axis=1)
