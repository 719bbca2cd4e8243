"""Flow pictures for people: a video's frames beside their TV-L1 flow (and OpenCV's, to compare)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import torch

from ..data.video import read_frames
from .evaluation import endpoint_error, opencv_tvl1
from .tvl1 import TVL1


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        from ..core.errors import FtsError
        raise FtsError("--device cuda: no CUDA GPU is visible to torch here; use --device cpu")
    return torch.device(name)


def compute_flow(frames: np.ndarray, solver: TVL1, device: torch.device, batch: int = 24) -> np.ndarray:
    """Flow of consecutive pairs of uint8 RGB frames (T, H, W, 3) -> (T-1, H, W, 2)."""
    grey = torch.tensor(np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]), dtype=torch.float32)[:, None]
    out = []
    solver = solver.to(device)
    with torch.no_grad():
        for i in range(0, len(grey) - 1, batch):
            j = min(i + batch, len(grey) - 1)
            out.append(solver(grey[i:j].to(device), grey[i + 1:j + 1].to(device)).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out)


def write_flow_pictures(video, out, device: str = "cpu", preset: str = "default", size: int = 240,
                        max_frames: int = 50, compare_opencv: bool = False) -> dict:
    """A video's TV-L1 flow pictures beside its frames (and OpenCV's, to compare), as a video or PNGs.

    Args:
        video: the input video.
        out: OUT.mp4 / OUT.avi, or a folder for PNG files.
        device: cpu or cuda.
        preset: TV-L1's settings (default or fast).
        size: the short side frames are scaled to.
        max_frames: frames to read.
        compare_opencv: add OpenCV DualTVL1's flow and its end-point difference.

    Returns:
        pairs, out, seconds, device, and epe_vs_opencv/mean_magnitude when compared.
    """
    dev = _device(device)
    frames = read_frames(video, max_frames=max_frames, resize_short=size)
    if len(frames) < 2:
        from ..core.errors import VideoError
        raise VideoError(f"{video}: needs at least 2 frames for flow, has {len(frames)}")
    solver = TVL1.preset(preset)
    t = time.perf_counter()
    flow = compute_flow(frames, solver, dev)
    seconds = time.perf_counter() - t
    cv_flow = [opencv_tvl1(frames[i], frames[i + 1]) for i in range(len(flow))] if compare_opencv else None
    top = max(1.0, float(np.percentile(np.linalg.norm(flow, axis=-1), 99)))
    panels = []
    for i in range(len(flow)):
        row = [frames[i], with_legend(flow_to_color(flow[i], top), top)]
        if cv_flow is not None:
            row.append(with_legend(flow_to_color(cv_flow[i], top), top))
        panels.append(np.concatenate(row, axis=1))
    out = Path(out)
    if out.suffix.lower() in (".mp4", ".avi", ".mkv"):
        from ..data.video import write_video
        write_video(out, np.stack(panels), fps=10.0, codec="mp4v" if out.suffix.lower() == ".mp4" else "MJPG")
    else:
        from ..core.artifacts import atomic_write_bytes
        for i, p in enumerate(panels):
            ok, buf = cv2.imencode(".png", cv2.cvtColor(p, cv2.COLOR_RGB2BGR))
            atomic_write_bytes(out / f"flow_{i:04d}.png", buf.tobytes())
    rep = {"pairs": len(flow), "out": str(out), "seconds": seconds, "device": str(dev),
           "mean_magnitude": float(np.linalg.norm(flow, axis=-1).mean())}
    if cv_flow is not None:
        rep["epe_vs_opencv"] = float(np.mean([endpoint_error(flow[i], cv_flow[i]) for i in range(len(flow))]))
    return rep


# -- pictures -------------------------------------------------------------------------------
def flow_to_color(flow, max_magnitude: Optional[float] = None) -> np.ndarray:
    """The standard colour-wheel picture of a flow (H, W, 2) or (2, H, W): hue is the direction,
    saturation the magnitude (relative to ``max_magnitude``, default the field's largest).
    Returns uint8 RGB (H, W, 3); zero flow is white."""
    import cv2

    f = flow.detach().cpu().numpy() if torch.is_tensor(flow) else np.asarray(flow)
    if f.ndim != 3:
        raise ValueError(f"flow must be (H, W, 2) or (2, H, W), got {f.shape}")
    if f.shape[0] == 2 and f.shape[-1] != 2:
        f = f.transpose(1, 2, 0)
    fx, fy = f[..., 0].astype(np.float32), f[..., 1].astype(np.float32)
    mag = np.sqrt(fx * fx + fy * fy)
    top = float(max_magnitude) if max_magnitude else float(mag.max())
    sat = np.clip(mag / max(top, 1e-6), 0, 1)
    hue = (np.degrees(np.arctan2(-fy, -fx)) + 180.0) / 2.0  # OpenCV hue in [0, 180)
    hsv = np.stack([hue % 180, sat * 255, np.full_like(sat, 255)], -1).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def with_legend(picture: np.ndarray, max_magnitude: float) -> np.ndarray:
    """A flow picture with its key in the bottom-right corner: the colour wheel (direction as hue,
    length as saturation, white at rest) and the length that full saturation stands for, in pixels
    a frame. Without the key a reader cannot tell left from right or slow from fast."""
    import cv2

    out = np.ascontiguousarray(picture.copy())
    h, w = out.shape[:2]
    d = max(15, min(h, w) // 4) | 1
    if d + 4 > min(h, w):
        return out
    r = d // 2
    ys, xs = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float32)
    wheel = flow_to_color(np.stack([xs, ys], -1) * (max_magnitude / r), max_magnitude)
    inside = (xs ** 2 + ys ** 2) <= r * r
    y0, x0 = h - d - 2, w - d - 2
    patch = out[y0:y0 + d, x0:x0 + d]
    patch[inside] = wheel[inside]
    cv2.circle(out, (x0 + r, y0 + r), r, (90, 90, 90), 1, cv2.LINE_AA)
    scale = max(0.3, min(h, w) / 600.0)
    text = f"{max_magnitude:.1f} px"
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    if tw + d + 8 <= w and th + 4 <= h:
        tx, ty = x0 - tw - 4, h - 4
        cv2.putText(out, text, (tx, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2, cv2.LINE_AA)
        cv2.putText(out, text, (tx, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (40, 40, 40), 1, cv2.LINE_AA)
    return out
