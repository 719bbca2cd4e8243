"""Judging flow: synthetic pairs with a known displacement field, and the measurements the
benchmark and tests use (end-point error against truth, photometric error after warping back)."""
from __future__ import annotations

from typing import Dict, Iterator, Tuple

import cv2
import numpy as np

from ..data.synthetic import _texture

KINDS = ("translate", "rotate", "zoom", "nonrigid")


def _textured(rng: np.random.Generator, h: int, w: int, base: np.ndarray = None) -> np.ndarray:
    """A grey texture in [0, 255]: a crop of a real picture when given, else procedural."""
    if base is not None:
        y = int(rng.integers(0, base.shape[0] - h + 1))
        x = int(rng.integers(0, base.shape[1] - w + 1))
        return base[y:y + h, x:x + w].astype(np.float32)
    t = _texture(rng, h, w, contrast=60.0)
    return cv2.cvtColor(t, cv2.COLOR_RGB2GRAY).astype(np.float32)


def known_pair(kind: str, rng: np.random.Generator, h: int = 112, w: int = 112, magnitude: float = 8.0,
               base: np.ndarray = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(frame1, frame2, true flow (H, W, 2), valid mask) with frame2(x + u(x)) = frame1(x).

    translate: up to ``magnitude`` px; rotate: a few degrees about a random centre; zoom: a few
    percent; nonrigid: a smooth random field up to ``magnitude`` px. The mask leaves out pixels
    that move out of the frame.

    Args:
        kind: translate, rotate, zoom or nonrigid.
        rng: the generator.
        h, w: the frames' size.
        magnitude: the largest displacement, pixels.
        base: a texture to move (None: a random one).

    Returns:
        (frame1, frame2, flow (H, W, 2), mask).
    """
    pad = int(magnitude * 2 + 8)
    big = _textured(rng, h + 2 * pad, w + 2 * pad, base)
    ys, xs = np.mgrid[0:h + 2 * pad, 0:w + 2 * pad].astype(np.float32)
    if kind in ("translate", "rotate", "zoom"):
        if kind == "translate":
            ang = rng.uniform(0, 2 * np.pi)
            mag = rng.uniform(0.5, 1.0) * magnitude
            a = np.array([[1, 0, mag * np.cos(ang)], [0, 1, mag * np.sin(ang)]], np.float32)
        elif kind == "rotate":
            c = (pad + rng.uniform(0.3, 0.7) * w, pad + rng.uniform(0.3, 0.7) * h)
            a = cv2.getRotationMatrix2D(c, float(rng.uniform(-5, 5)), 1.0).astype(np.float32)
        else:
            c = (pad + rng.uniform(0.3, 0.7) * w, pad + rng.uniform(0.3, 0.7) * h)
            a = cv2.getRotationMatrix2D(c, 0.0, float(rng.uniform(0.94, 1.06))).astype(np.float32)
        flow = np.stack([a[0, 0] * xs + a[0, 1] * ys + a[0, 2] - xs, a[1, 0] * xs + a[1, 1] * ys + a[1, 2] - ys], -1)
        second = cv2.warpAffine(big, a, (big.shape[1], big.shape[0]), flags=cv2.INTER_CUBIC,
                                borderMode=cv2.BORDER_REFLECT)
    elif kind == "nonrigid":
        coarse = rng.standard_normal((4, 4, 2)).astype(np.float32)
        field = cv2.resize(coarse, (big.shape[1], big.shape[0]), interpolation=cv2.INTER_CUBIC)
        field *= magnitude / (np.abs(field).max() + 1e-6) * 0.8
        # second(y) = first(y - w(y)); the forward flow solves u(x) = w(x + u(x)).
        second = cv2.remap(big, xs - field[..., 0], ys - field[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        flow = field.copy()
        for _ in range(20):
            flow = np.stack([cv2.remap(field[..., k], xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_REPLICATE) for k in range(2)], -1)
    else:
        raise ValueError(f"unknown kind {kind!r}; choose from {KINDS}")
    crop = (slice(pad, pad + h), slice(pad, pad + w))
    f1, f2, fl = big[crop], second[crop], flow[crop]
    tx, ty = np.meshgrid(np.arange(w), np.arange(h))
    mask = ((tx + fl[..., 0] >= 1) & (tx + fl[..., 0] <= w - 2) & (ty + fl[..., 1] >= 1) & (ty + fl[..., 1] <= h - 2))
    # Both frames as 8-bit pictures, as a camera gives them and as OpenCV's solver takes them.
    def to_uint8(f):
        return np.clip(f, 0, 255).round().astype(np.uint8)

    return to_uint8(f1), to_uint8(f2), fl.astype(np.float32), mask


SCENES = ("camera", "light", "camera+light")


def scene_pair(kind: str, rng: np.random.Generator, h: int = 112, w: int = 112, camera_px: float = 3.0,
               gain: float = 0.15):
    """A scene that breaks brightness constancy or moves the camera, with its truths:
    (frame1, frame2, flow (H, W, 2), object flow (H, W, 2), mask). A textured object moves over a
    textured background; "camera" moves the whole view by up to ``camera_px`` as well, "light"
    scales frame 2's brightness by 1 +- ``gain``, "camera+light" both. ``flow`` is every pixel's
    motion (camera and object), ``object flow`` the object's motion in the scene (zero on the
    background): what a flow with the camera removed should show."""
    if kind not in SCENES:
        raise ValueError(f"unknown scene {kind!r}; choose from {SCENES}")
    pad = int(camera_px * 2 + 16)
    H, W = h + 2 * pad, w + 2 * pad
    bg = _textured(rng, H, W)
    side = int(min(h, w) * rng.uniform(0.3, 0.45))
    obj = _textured(rng, side, side)
    oy, ox = pad + int(rng.uniform(0.2, 0.55) * h), pad + int(rng.uniform(0.2, 0.55) * w)
    ang = rng.uniform(0, 2 * np.pi)
    move = rng.uniform(1.5, 4.0) * np.array([np.cos(ang), np.sin(ang)], np.float32)
    cam = np.zeros(2, np.float32)
    if "camera" in kind:
        a = rng.uniform(0, 2 * np.pi)
        cam = rng.uniform(0.5, 1.0) * camera_px * np.array([np.cos(a), np.sin(a)], np.float32)
    g = 1.0 + (rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0) * gain if "light" in kind else 0.0)

    def scene(shift_obj):
        img = bg.copy()
        m = np.float32([[1, 0, ox + shift_obj[0]], [0, 1, oy + shift_obj[1]]])
        o = cv2.warpAffine(obj, m, (W, H), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        a = cv2.warpAffine(np.ones_like(obj), m, (W, H), flags=cv2.INTER_LINEAR, borderValue=0)
        return a * o + (1 - a) * img, a

    s1, a1 = scene(np.zeros(2, np.float32))
    s2, _ = scene(move)
    # the view of frame 2 is the scene shifted by cam (the camera turned the other way): a pixel at x
    # in frame 1 is at x + cam in frame 2, plus the object's own motion on the object
    view2 = cv2.warpAffine(s2, np.float32([[1, 0, cam[0]], [0, 1, cam[1]]]), (W, H), flags=cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REFLECT)
    crop = (slice(pad, pad + h), slice(pad, pad + w))
    on_obj = a1[crop] > 0.5
    obj_flow = np.zeros((h, w, 2), np.float32)
    obj_flow[on_obj] = move
    flow = obj_flow + cam
    tx, ty = np.meshgrid(np.arange(w), np.arange(h))
    mask = ((tx + flow[..., 0] >= 1) & (tx + flow[..., 0] <= w - 2) & (ty + flow[..., 1] >= 1)
            & (ty + flow[..., 1] <= h - 2))

    def to_uint8(f):
        return np.clip(f, 0, 255).round().astype(np.uint8)

    return to_uint8(s1[crop]), to_uint8(view2[crop] * g), flow, obj_flow, mask


def known_pairs(n_per_kind: int = 3, seed: int = 0, h: int = 112, w: int = 112, magnitude: float = 8.0,
                base: np.ndarray = None) -> Iterator[Tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``n_per_kind`` pairs of every kind in KINDS (``known_pair``), reproducible from ``seed``.

    Args:
        n_per_kind: pairs of each kind.
        seed: the generator's seed.
        h, w, magnitude, base: as ``known_pair`` takes them.

    Returns:
        An iterator of (kind, frame1, frame2, flow, mask).
    """
    rng = np.random.default_rng(seed)
    for kind in KINDS:
        for _ in range(n_per_kind):
            yield (kind,) + known_pair(kind, rng, h, w, magnitude, base)


def photometric_error(frame1: np.ndarray, frame2: np.ndarray, flow: np.ndarray, border: int = 4) -> float:
    """Mean absolute grey-level difference between frame 1 and frame 2 warped back with the flow."""
    f1 = frame1.astype(np.float32)
    if f1.ndim == 3:
        f1 = cv2.cvtColor(f1, cv2.COLOR_RGB2GRAY)
    f2 = frame2.astype(np.float32)
    if f2.ndim == 3:
        f2 = cv2.cvtColor(f2, cv2.COLOR_RGB2GRAY)
    d = np.abs(warp_back(f2, flow) - f1)
    b = slice(border, -border) if border else slice(None)
    return float(d[b, b].mean())


def summarise(errors: Dict[str, list]) -> Dict[str, float]:
    out = {k: float(np.mean(v)) for k, v in errors.items()}
    out["overall"] = float(np.mean([x for v in errors.values() for x in v]))
    return out


# -- OpenCV's reference ---------------------------------------------------------------------
def opencv_tvl1(frame1: np.ndarray, frame2: np.ndarray, **params) -> np.ndarray:
    """OpenCV's DualTVL1 (opencv-contrib) on two frames (H, W) grey or (H, W, 3) RGB uint8.
    Keyword params set the solver's fields (tau, lambda_, theta, epsilon, warps, iterations as
    inner iterations, scales, scale_step, median). Returns flow (H, W, 2) float32, x then y."""
    import cv2

    if not hasattr(cv2, "optflow"):
        from ..core.errors import FtsError
        raise FtsError("OpenCV's TV-L1 reference needs the contrib build: pip install opencv-contrib-python-headless "
                       "(the TVL1 layers themselves work without it)")
    tv = cv2.optflow.DualTVL1OpticalFlow_create()
    setters = {"tau": tv.setTau, "lambda_": tv.setLambda, "theta": tv.setTheta, "epsilon": tv.setEpsilon,
               "warps": tv.setWarpingsNumber, "iterations": tv.setInnerIterations,
               "outer_iterations": tv.setOuterIterations, "scales": tv.setScalesNumber,
               "scale_step": tv.setScaleStep, "median": tv.setMedianFiltering}
    for k, v in params.items():
        if k not in setters:
            raise ValueError(f"unknown DualTVL1 parameter {k!r}; known: {', '.join(setters)}")
        setters[k](v)

    def grey(f):
        f = np.asarray(f)
        if f.ndim == 3:
            f = cv2.cvtColor(f.astype(np.uint8), cv2.COLOR_RGB2GRAY)
        return f.astype(np.uint8)

    return tv.calc(grey(frame1), grey(frame2), None)


def endpoint_error(flow, truth, mask=None) -> float:
    """Average end-point error between two flows (H, W, 2), optionally over a boolean mask."""
    d = np.sqrt(((np.asarray(flow) - np.asarray(truth)) ** 2).sum(-1))
    return float(d[mask].mean() if mask is not None else d.mean())


def warp_back(frame2: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Frame 2 warped back onto frame 1 with the flow: I2(x + u(x)). For photometric error."""
    import cv2

    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(frame2.astype(np.float32), xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)
