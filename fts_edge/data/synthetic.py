"""The procedural motion dataset: classes carried by motion alone.

Each video shows a randomly textured object over a randomly textured background. The class is
how the object moves (translation in one of four directions, rotation either way, zoom in or
out, oscillation along either axis). Start poses are random and symmetric across classes, so a
single frame says nothing about the class: a per-frame classifier scores near chance, while flow
makes the class obvious. Every video is a pure function of (seed, class, index).

Three nuisances make a hard set of the same classes, each a setting (``Nuisance``), drawn from a
random stream of their own so a video without them is the same as before: a hand-held camera
(the whole view follows a damped random walk), flickering light (each frame's brightness scaled
by up to +-``flicker``), and distractor objects that move at random and carry no class.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

import cv2
import numpy as np

from ..core.settings import Settings, setting

MOTION_CLASSES = (
    "translate_left", "translate_right", "translate_up", "translate_down",
    "rotate_cw", "rotate_ccw", "zoom_in", "zoom_out",
    "oscillate_horizontal", "oscillate_vertical",
)


MAX_CLASSES = 101  # beyond the ten motions: each again faster (x2, x3, ...), so a set can be shaped like UCF101's


def class_name(label: int) -> str:
    """translate_left for label 0 ... oscillate_vertical for 9; then each motion faster: label 10
    is translate_left_x2, 20 translate_left_x3, ..."""
    if not 0 <= label < MAX_CLASSES:
        raise ValueError(f"label must be in [0, {MAX_CLASSES}), got {label}")
    motion, group = label % len(MOTION_CLASSES), label // len(MOTION_CLASSES)
    return MOTION_CLASSES[motion] + (f"_x{group + 1}" if group else "")


def class_names(n: int):
    return [class_name(k) for k in range(n)]


def _texture(rng: np.random.Generator, h: int, w: int, contrast: float) -> np.ndarray:
    """Multi-octave colour noise, uint8 (h, w, 3)."""
    acc = np.zeros((h, w, 3), np.float32)
    for octave, weight in ((4, 1.0), (10, 0.6), (24, 0.35)):
        small = rng.standard_normal((max(2, h * octave // 128), max(2, w * octave // 128), 3)).astype(np.float32)
        acc += weight * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    mix = rng.uniform(-1, 1, (3, 3)).astype(np.float32) + np.eye(3, dtype=np.float32)
    acc = acc @ mix
    acc = (acc - acc.mean()) / (acc.std() + 1e-6)
    base = rng.uniform(70, 185, 3).astype(np.float32)
    return np.clip(base + contrast * acc, 0, 255).astype(np.uint8)


def _shape_mask(rng: np.random.Generator, side: int) -> np.ndarray:
    """A random filled shape (ellipse or polygon) in a side x side float mask, antialiased."""
    m = np.zeros((side * 4, side * 4), np.uint8)
    c = side * 2
    if rng.random() < 0.5:
        axes = (int(side * 4 * rng.uniform(0.3, 0.48)), int(side * 4 * rng.uniform(0.22, 0.42)))
        cv2.ellipse(m, (c, c), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    else:
        k = int(rng.integers(3, 8))
        ang = np.sort(rng.uniform(0, 2 * math.pi, k))
        rad = side * 4 * rng.uniform(0.3, 0.48, k)
        pts = np.stack([c + rad * np.cos(ang), c + rad * np.sin(ang)], 1).astype(np.int32)
        cv2.fillPoly(m, [pts], 255)
    return cv2.resize(m, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _trajectory(label: int, rng: np.random.Generator, frames: int, h: int, w: int):
    """Per-frame (cx, cy, angle_deg, scale) for the class; random start, symmetric across classes.
    A label past the ten motions is its motion (label % 10) that many times faster."""
    name = MOTION_CLASSES[label % len(MOTION_CLASSES)]
    fast = 1.0 + label // len(MOTION_CLASSES)
    unit = min(h, w) / 128.0
    t = np.arange(frames, dtype=np.float32) - (frames - 1) / 2.0  # centred time: mid-clip pose is random
    cx0 = rng.uniform(0.35, 0.65) * w
    cy0 = rng.uniform(0.35, 0.65) * h
    ang0 = rng.uniform(0, 360)
    s0 = rng.uniform(0.85, 1.15)
    cx = np.full(frames, cx0, np.float32)
    cy = np.full(frames, cy0, np.float32)
    ang = np.full(frames, ang0, np.float32)
    scale = np.full(frames, s0, np.float32)
    speed = fast * rng.uniform(0.9, 2.0) * unit * 32.0 / max(frames, 2)  # px/frame: crosses ~30-60 px per clip
    if name == "translate_left":
        cx = cx0 - speed * t
    elif name == "translate_right":
        cx = cx0 + speed * t
    elif name == "translate_up":
        cy = cy0 - speed * t
    elif name == "translate_down":
        cy = cy0 + speed * t
    elif name in ("rotate_cw", "rotate_ccw"):
        rate = fast * rng.uniform(3.0, 7.0) * 32.0 / max(frames, 2)
        ang = ang0 + (-rate if name == "rotate_cw" else rate) * t  # OpenCV: positive angle is counter-clockwise
    elif name in ("zoom_in", "zoom_out"):
        rate = fast * rng.uniform(0.012, 0.025) * 32.0 / max(frames, 2)
        scale = s0 * np.exp((rate if name == "zoom_in" else -rate) * t)
    elif name in ("oscillate_horizontal", "oscillate_vertical"):
        amp = rng.uniform(6, 12) * unit
        period = rng.uniform(8, 14) / fast
        phase = rng.uniform(0, 2 * math.pi)
        d = amp * np.sin(2 * math.pi * t / period + phase)
        if name == "oscillate_horizontal":
            cx = cx0 + d
        else:
            cy = cy0 + d
    else:  # pragma: no cover
        raise ValueError(name)
    return cx, cy, ang, scale


@dataclass(frozen=True)
class Nuisance:
    """What makes a motion video hard: ``shake`` the hand-held camera's jitter (root mean square of
    how far the view moves in a frame, pixels at 128 pixels; a damped random walk), ``flicker``
    the largest brightness change of a frame (0.15: +-15%), ``distractors`` objects moving at
    random besides the one that carries the class."""

    shake: float = 0.0
    flicker: float = 0.0
    distractors: int = 0

    def __post_init__(self):
        if not (0.0 <= self.shake <= 20.0 and 0.0 <= self.flicker < 1.0 and 0 <= self.distractors <= 8):
            raise ValueError("shake must be 0 to 20 px, flicker 0 to below 1, distractors 0 to 8")

    @property
    def any(self) -> bool:
        return bool(self.shake or self.flicker or self.distractors)


def camera_path(rng: np.random.Generator, frames: int, shake: float, unit: float, damping: float = 0.8):
    """A hand-held camera's offset (dx, dy) per frame: velocity v_t = damping * v_(t-1) + noise,
    offset the running sum, started at rest at zero; the noise is scaled so that the velocity's
    root mean square, once steady, is ``shake * unit`` pixels a frame."""
    sigma = shake * unit * math.sqrt((1 - damping ** 2) / 2)
    v = np.zeros(2, np.float32)
    pos = np.zeros((frames, 2), np.float32)
    for i in range(1, frames):
        v = damping * v + rng.normal(0.0, sigma, 2).astype(np.float32)
        pos[i] = pos[i - 1] + v
    return pos


def _paste(obj, mask, side, cx, cy, ang, scale, width, height):
    m = cv2.getRotationMatrix2D((side / 2.0, side / 2.0), float(ang), float(scale))
    m[0, 2] += cx - side / 2.0
    m[1, 2] += cy - side / 2.0
    o = cv2.warpAffine(obj, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    a = cv2.warpAffine(mask, m, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)[..., None]
    return o, a


def render_clip(label: int, seed: int, index: int = 0, frames: int = 32, height: int = 128,
                width: int = 128, background: float = 1.0, nuisance: Optional[Nuisance] = None) -> np.ndarray:
    """One video of class ``label``: uint8 RGB (frames, height, width, 3), deterministic in its arguments.

    ``background`` scales the background texture's contrast: 1 (default) is as textured as the
    object, so the object is camouflaged and only its motion gives it away; 0 is a flat colour.
    The random draws do not depend on it, so the same video differs only in its background.

    Args:
        label: the class (``class_name``: a motion of MOTION_CLASSES, faster past the tenth).
        seed, index: which video of that class.
        frames, height, width: its size.
        background: the background texture's contrast, 0 to 1.
        nuisance: a hand-held camera, flicker and distractors (``Nuisance``), or None.

    Returns:
        uint8 RGB frames (frames, height, width, 3).
    """
    nz = nuisance or Nuisance()
    if not 0 <= label < MAX_CLASSES:
        raise ValueError(f"label must be in [0, {MAX_CLASSES}), got {label}")
    if not 0.0 <= background <= 1.0:
        raise ValueError(f"background must be in [0, 1], got {background}")
    rng = np.random.default_rng([int(seed), int(label), int(index)])
    backdrop = _texture(rng, height, width, contrast=rng.uniform(25, 45) * background)
    side = int(min(height, width) * rng.uniform(0.36, 0.5))
    obj = _texture(rng, side, side, contrast=rng.uniform(50, 80)).astype(np.float32)
    mask = _shape_mask(rng, side)
    cx, cy, ang, scale = _trajectory(label, rng, frames, height, width)
    bg = backdrop.astype(np.float32)
    if not nz.any:
        out = np.empty((frames, height, width, 3), np.uint8)
        for i in range(frames):
            o, a = _paste(obj, mask, side, cx[i], cy[i], ang[i], scale[i], width, height)
            out[i] = np.clip(a * o + (1 - a) * bg, 0, 255).astype(np.uint8)
        return out
    # the nuisances: their own random stream, so the scene above is the one rendered without them
    nrng = np.random.default_rng([int(seed), int(label), int(index), 1])
    unit = min(height, width) / 128.0
    cam = camera_path(nrng, frames, nz.shake, unit) if nz.shake else np.zeros((frames, 2), np.float32)
    gain = 1.0 + nrng.uniform(-nz.flicker, nz.flicker, frames) if nz.flicker else np.ones(frames)
    others = []
    for _ in range(nz.distractors):
        dside = int(min(height, width) * nrng.uniform(0.2, 0.32))
        dobj = _texture(nrng, dside, dside, contrast=nrng.uniform(50, 80)).astype(np.float32)
        dmask = _shape_mask(nrng, dside)
        start = nrng.uniform(0.2, 0.8, 2) * (width, height)
        heading = nrng.uniform(0, 2 * math.pi)
        speed = nrng.uniform(0.5, 2.0) * unit
        turn = np.cumsum(nrng.normal(0.0, 0.3, frames))  # wanders: no direction, no class
        path = start + np.cumsum(speed * np.stack([np.cos(heading + turn), np.sin(heading + turn)], 1), 0)
        spin = nrng.uniform(-4, 4) * np.arange(frames)
        others.append((dobj, dmask, dside, path, spin))
    # the camera moves the whole view: the scene is rendered on a margin wide enough for its walk
    pad = int(np.ceil(np.abs(cam).max())) + 1 if nz.shake else 0
    big_bg = cv2.copyMakeBorder(bg, pad, pad, pad, pad, cv2.BORDER_REFLECT) if pad else bg
    H, W = height + 2 * pad, width + 2 * pad
    out = np.empty((frames, height, width, 3), np.uint8)
    for i in range(frames):
        canvas = big_bg.copy()
        for dobj, dmask, dside, path, spin in others:  # behind the moving object
            o, a = _paste(dobj, dmask, dside, path[i, 0] + pad, path[i, 1] + pad, spin[i], 1.0, W, H)
            canvas = a * o + (1 - a) * canvas
        o, a = _paste(obj, mask, side, cx[i] + pad, cy[i] + pad, ang[i], scale[i], W, H)
        canvas = a * o + (1 - a) * canvas
        x0, y0 = pad + cam[i, 0], pad + cam[i, 1]
        view = cv2.warpAffine(canvas, np.float32([[1, 0, -x0], [0, 1, -y0]]), (width, height),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        out[i] = np.clip(view * gain[i], 0, 255).astype(np.uint8)
    return out


def render_scene(labels: List[int], seed: int, index: int = 0, frames: int = 32, height: int = 128,
                 cell: int = 128, background: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """Several objects in one frame, each with the motion of its own class, side by side: object k
    moves within the k-th ``cell``-wide column of a shared textured background (the same textures
    and trajectories as ``render_clip``'s), so per-object labels can be scored.

    Returns:
        uint8 RGB frames (frames, height, cell * len(labels), 3) and each object's box in every
        frame, (len(labels), frames, 4) int x, y, w, h: the bounding box of its visible shape.
    """
    if not 1 <= len(labels) <= 3:
        raise ValueError(f"a scene has 1 to 3 objects, got {len(labels)}")
    for label in labels:
        if not 0 <= label < MAX_CLASSES:
            raise ValueError(f"label must be in [0, {MAX_CLASSES}), got {label}")
    width = cell * len(labels)
    rng = np.random.default_rng([int(seed), 7919, int(index)])
    bg = _texture(rng, height, width, contrast=rng.uniform(25, 45) * background).astype(np.float32)
    objects = []
    for k, label in enumerate(labels):
        orng = np.random.default_rng([int(seed), int(label), int(index), 2, k])
        side = int(min(height, cell) * orng.uniform(0.36, 0.5))
        obj = _texture(orng, side, side, contrast=orng.uniform(50, 80)).astype(np.float32)
        mask = _shape_mask(orng, side)
        cx, cy, ang, scale = _trajectory(label, orng, frames, height, cell)
        objects.append((obj, mask, side, cx + k * cell, cy, ang, scale))
    out = np.empty((frames, height, width, 3), np.uint8)
    boxes = np.zeros((len(labels), frames, 4), np.int32)
    for i in range(frames):
        canvas = bg
        for k, (obj, mask, side, cx, cy, ang, scale) in enumerate(objects):
            o, a = _paste(obj, mask, side, cx[i], cy[i], ang[i], scale[i], width, height)
            canvas = a * o + (1 - a) * canvas
            ys, xs = np.nonzero(a[..., 0] > 0.5)
            if len(xs):
                boxes[k, i] = (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
            else:  # out of view this frame: where it was
                boxes[k, i] = boxes[k, i - 1] if i else (int(cx[i]) - 1, int(cy[i]) - 1, 2, 2)
        out[i] = np.clip(canvas, 0, 255).astype(np.uint8)
    return out, boxes


def write_scene_dataset(out, scenes: int, objects: int = 2, seed: int = 0, num_classes: int = len(MOTION_CLASSES),
                        frames: int = 32, height: int = 128, cell: int = 128, val_fraction: float = 0.25,
                        fps: float = 25.0, progress: Optional[Callable] = None, background: float = 1.0) -> dict:
    """Write ``scenes`` videos of ``objects`` objects each (``render_scene``; the objects of a scene
    have different classes) as ``OUT/{train,val}/scene_s<seed>_<i>.avi``, each with its objects'
    classes and per-frame boxes beside it (``.boxes.json``), and ``OUT/scenes.json`` listing them all.
    Files already present are kept, so an interrupted run resumes.

    Returns:
        {"train": n, "val": n}.
    """
    import json

    from ..core.artifacts import atomic_write_text
    from .video import write_video

    if not 2 <= objects <= 3 or objects > num_classes:
        raise ValueError(f"a scene has 2 or 3 objects of different classes, got {objects} of {num_classes} classes")
    out = Path(out)
    names = class_names(num_classes)
    listing = []
    counts = {"train": 0, "val": 0}
    items = range(scenes)
    it = progress(items, desc="writing scenes", unit="video") if progress else items
    for i in it:
        split = split_of(i, scenes, val_fraction)
        labels = [int(v) for v in np.random.default_rng([int(seed), 104729, i]).choice(num_classes, objects, False)]
        path = out / split / f"scene_s{seed}_{i:04d}.avi"
        meta = path.with_suffix(".boxes.json")
        if not (path.exists() and meta.exists()):
            video, boxes = render_scene(labels, seed, i, frames, height, cell, background)
            write_video(path, video, fps=fps)
            atomic_write_text(meta, json.dumps({"objects": [
                {"label": names[lab], "boxes": b.tolist()} for lab, b in zip(labels, boxes)]}))
        listing.append({"path": f"{split}/{path.name}", "split": split, "labels": [names[lab] for lab in labels]})
        counts[split] += 1
    atomic_write_text(out / "scenes.json", json.dumps({"classes": names, "boxes": "x, y, w, h per frame",
                                                       "videos": listing}, indent=1))
    return counts


def split_of(index: int, per_class: int, val_fraction: float) -> str:
    """Which split the index-th video of a class belongs to (the last ones are held out)."""
    n_val = int(round(per_class * val_fraction))
    return "val" if index >= per_class - n_val else "train"


def iter_motion_dataset(per_class: int, seed: int = 0, num_classes: int = len(MOTION_CLASSES),
                        val_fraction: float = 0.25) -> Iterator[tuple]:
    """(split, class_name, label, index) for every video of the dataset, in a fixed order."""
    if not 2 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"num_classes must be in [2, {MAX_CLASSES}], got {num_classes}")
    for label in range(num_classes):
        for i in range(per_class):
            yield split_of(i, per_class, val_fraction), class_name(label), label, i


@dataclass(frozen=True)
class SynthSettings(Settings):
    """`fts-edge data synth`: the motion dataset written as videos."""

    per_class: int = setting(40, lo=1, help="videos per class")
    seed: int = setting(0, lo=0, help="seed of the videos")
    classes: int = setting(len(MOTION_CLASSES), lo=2, hi=MAX_CLASSES,
                           help="classes: the ten motions, then each again faster (51: HMDB51's count)")
    frames: int = setting(32, lo=2, help="frames per video")
    size: int = setting(128, lo=8, hi=4096, help="frame side in pixels")
    width: Optional[int] = setting(None, lo=8, hi=4096, help="frame width, where it is not --size (320 for 320x240)")
    height: Optional[int] = setting(None, lo=8, hi=4096, help="frame height, where it is not --size")
    val_fraction: float = setting(0.25, lo=0.0, hi=0.9, help="held-out fraction per class")
    background: float = setting(1.0, lo=0.0, hi=1.0, help="background texture contrast, 0 (flat) to 1 (as textured as "
                                                          "the object)")
    shake: float = setting(0.0, lo=0.0, hi=20.0, help="hand-held camera: how far the view moves a frame, RMS pixels "
                                                      "at 128 px (1.5: a hand-held phone)")
    flicker: float = setting(0.0, lo=0.0, hi=0.9, help="flickering light: largest brightness change of a frame "
                                                       "(0.15: +-15%)")
    distractors: int = setting(0, lo=0, hi=8, help="objects moving at random besides the one that carries the class")
    objects: int = setting(1, lo=1, hi=3, help="objects with a class each, side by side in one frame, their boxes "
                                               "written beside each video (2 or 3: scenes for per-person "
                                               "recognition; --size is then each object's column)")

    @property
    def nuisance(self) -> "Nuisance":
        return Nuisance(self.shake, self.flicker, self.distractors)


def write_motion_dataset(out, per_class: int, seed: int = 0, num_classes: int = len(MOTION_CLASSES),
                         frames: int = 32, height: int = 128, width: int = 128, val_fraction: float = 0.25,
                         fps: float = 25.0, progress: Optional[Callable] = None, background: float = 1.0,
                         nuisance: Optional[Nuisance] = None) -> dict:
    """Write the motion dataset as real MJPG videos in the folder layout ``OUT/{train,val}/<class>/*.avi``.

    Files already present are kept (each is written atomically), so an interrupted run resumes.
    Returns counts per split.

    Args:
        out: the dataset's folder.
        per_class, seed, num_classes: how many videos of which classes.
        frames, height, width, fps: each video's size and rate.
        val_fraction: the held-out share of each class.
        progress: a progress factory, or None.
        background: the background texture's contrast, 0 to 1.
        nuisance: a hand-held camera, flicker and distractors, or None.

    Returns:
        {"train": n, "val": n}.
    """
    from .video import write_video

    out = Path(out)
    items = list(iter_motion_dataset(per_class, seed, num_classes, val_fraction))
    counts = {"train": 0, "val": 0}
    it = progress(items, desc="writing motion videos", unit="video") if progress else items
    for split, name, label, i in it:
        path = out / split / name / f"{name}_s{seed}_{i:04d}.avi"
        if not path.exists():
            write_video(path, render_clip(label, seed, i, frames, height, width, background, nuisance), fps=fps)
        counts[split] += 1
    return counts
