"""Flow computed once per video and kept (in memory and on disk), so teacher epochs and the
student's distillation do not recompute TV-L1. Flow is computed on the frames as loaded (short
side at ClipSpec.resize) from every frame t to frame (t + stride) % T: exactly the pairs a clip
of ``ClipSpec.stride`` holds (``sample_indices`` loops short videos the same way), so a clip's
cached flow is the flow the teacher's own TV-L1 layers compute from that clip at test time
(up to the crop's border). Clips then crop and flip it as they crop and flip the RGB frames.

Summing consecutive flows over the stride instead is not the same flow (docs/experiments.md)."""
from __future__ import annotations

import hashlib
import io
import weakref
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from ..core.artifacts import atomic_write_bytes


class FlowCache:
    def __init__(self, solver, folder: Optional[str] = None, batch: int = 32, device: str = "cpu"):
        self.solver, self.batch, self.device = solver.to(device).eval(), batch, device
        self.folder = Path(folder) if folder else None
        self._mem: Dict[str, np.ndarray] = {}
        self._seen: Dict[tuple, tuple] = {}  # (path, stride) -> (weak ref to the frames last hashed, their key)
        self.tag = hashlib.sha1(repr(solver).encode()).hexdigest()[:10]  # settings change -> new cache

    def _key(self, frames: np.ndarray, stride: int) -> str:
        """Keyed by the decoded frames themselves, not the file's path: a dataset that is moved or
        copied keeps its cache, and a video replaced in place never gets the old video's flow."""
        h = hashlib.sha1(f"{frames.shape}|{frames.dtype}|{self.tag}|stride{stride}".encode())
        h.update(np.ascontiguousarray(frames).data)
        return h.hexdigest()

    @torch.no_grad()
    def compute(self, frames: np.ndarray, stride: int = 1) -> np.ndarray:
        """uint8 RGB frames (T, H, W, 3) -> float16 flow (T, 2, H, W) in pixels, entry t from
        frame t to frame (t + stride) % T."""
        from .tvl1 import to_grey

        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        grey = to_grey(x)
        t = len(grey)
        nxt = (torch.arange(t) + stride) % t
        out = []
        for i in range(0, t, self.batch):
            j = min(i + self.batch, t)
            out.append(self.solver(grey[i:j].to(self.device), grey[nxt[i:j]].to(self.device)).cpu())
        return torch.cat(out).numpy().astype(np.float16)

    def get(self, path: str, frames: np.ndarray, stride: int = 1) -> np.ndarray:
        """The flow of ``frames`` (decoded from ``path``, named only for messages) between frames
        ``stride`` apart (``compute``), from memory, from disk, or computed and stored."""
        if stride < 1:
            raise ValueError(f"flow stride must be >= 1, got {stride}")
        seen = self._seen.get((path, stride))
        if seen is not None and seen[0]() is frames:  # the same array again (the dataset's frame cache):
            key = seen[1]                              # no need to hash it every epoch
        else:
            key = self._key(frames, stride)
            self._seen[(path, stride)] = (weakref.ref(frames), key)
        if key in self._mem:
            return self._mem[key]
        f = None
        if self.folder is not None:
            p = self.folder / f"{key}.npy"
            if p.exists():
                try:
                    f = np.load(p)
                except (ValueError, OSError):
                    f = None  # a damaged cache file is recomputed, not trusted
        if f is None or f.shape[0] != len(frames):
            f = self.compute(frames, stride)
            if self.folder is not None:
                buf = io.BytesIO()
                np.save(buf, f)
                atomic_write_bytes(self.folder / f"{key}.npy", buf.getvalue())
        self._mem[key] = f
        return f
