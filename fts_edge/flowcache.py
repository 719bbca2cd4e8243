"""Flow computed once per video and kept (in memory and on disk), so teacher epochs and the
student's distillation do not recompute TV-L1. Flow is computed on the frames as loaded (short
side at ClipSpec.resize) between every consecutive pair; clips then crop and flip it exactly
as they crop and flip the RGB frames."""
from __future__ import annotations

import hashlib
import io
import weakref
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from .artifacts import atomic_write_bytes


class FlowCache:
    def __init__(self, solver, folder: Optional[str] = None, batch: int = 32, device: str = "cpu"):
        self.solver, self.batch, self.device = solver.to(device).eval(), batch, device
        self.folder = Path(folder) if folder else None
        self._mem: Dict[str, np.ndarray] = {}
        self._seen: Dict[str, tuple] = {}  # path -> (weak ref to the frames last hashed, their key)
        self.tag = hashlib.sha1(repr(solver).encode()).hexdigest()[:10]  # settings change -> new cache

    def _key(self, frames: np.ndarray) -> str:
        """Keyed by the decoded frames themselves, not the file's path: a dataset that is moved or
        copied keeps its cache, and a video replaced in place never gets the old video's flow."""
        h = hashlib.sha1(f"{frames.shape}|{frames.dtype}|{self.tag}".encode())
        h.update(np.ascontiguousarray(frames).data)
        return h.hexdigest()

    @torch.no_grad()
    def compute(self, frames: np.ndarray) -> np.ndarray:
        """uint8 RGB frames (T, H, W, 3) -> float16 flow (T-1, 2, H, W), pixels."""
        from .flow import to_grey

        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        grey = to_grey(x)
        out = []
        for i in range(0, len(grey) - 1, self.batch):
            j = min(i + self.batch, len(grey) - 1)
            out.append(self.solver(grey[i:j].to(self.device), grey[i + 1:j + 1].to(self.device)).cpu())
        return torch.cat(out).numpy().astype(np.float16)

    def get(self, path: str, frames: np.ndarray) -> np.ndarray:
        """The flow of ``frames`` (decoded from ``path``, named only for messages), from memory,
        from disk, or computed and stored."""
        seen = self._seen.get(path)
        if seen is not None and seen[0]() is frames:  # the same array again (the dataset's frame cache):
            key = seen[1]                              # no need to hash it every epoch
        else:
            key = self._key(frames)
            self._seen[path] = (weakref.ref(frames), key)
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
        if f is None or f.shape[0] != len(frames) - 1:
            f = self.compute(frames)
            if self.folder is not None:
                buf = io.BytesIO()
                np.save(buf, f)
                atomic_write_bytes(self.folder / f"{key}.npy", buf.getvalue())
        self._mem[key] = f
        return f
