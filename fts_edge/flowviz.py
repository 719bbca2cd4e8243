"""Flow pictures for people: a video's frames beside their TV-L1 flow (and OpenCV's, to compare)."""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import torch

from .flow import TVL1, endpoint_error, flow_to_color, opencv_tvl1, with_legend
from .video import read_frames


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        from .errors import FtsError
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
    dev = _device(device)
    frames = read_frames(video, max_frames=max_frames, resize_short=size)
    if len(frames) < 2:
        from .errors import VideoError
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
        from .video import write_video
        write_video(out, np.stack(panels), fps=10.0, codec="mp4v" if out.suffix.lower() == ".mp4" else "MJPG")
    else:
        from .artifacts import atomic_write_bytes
        for i, p in enumerate(panels):
            ok, buf = cv2.imencode(".png", cv2.cvtColor(p, cv2.COLOR_RGB2BGR))
            atomic_write_bytes(out / f"flow_{i:04d}.png", buf.tobytes())
    rep = {"pairs": len(flow), "out": str(out), "seconds": seconds, "device": str(dev),
           "mean_magnitude": float(np.linalg.norm(flow, axis=-1).mean())}
    if cv_flow is not None:
        rep["epe_vs_opencv"] = float(np.mean([endpoint_error(flow[i], cv_flow[i]) for i in range(len(flow))]))
    return rep
