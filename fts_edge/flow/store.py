"""The flow store: every video's TV-L1 flow computed once, as a stage of its own, and kept on disk;
training reads a clip's entries of it, memory-mapped, and keeps nothing.

One float16 file a video, ``(T, 2, H, W)``: entry t is the flow from frame t to frame
``(t + stride) % T`` of the frames as loaded (short side at ClipSpec.resize), exactly the pairs a
clip of ``ClipSpec.stride`` holds (``sample_indices`` loops short videos the same way), so a
clip's stored flow is the flow the teacher's own TV-L1 layers compute from that clip at test time
(up to the crop's border). Summing consecutive flows over the stride instead is not the same flow
(docs/experiments.md).

Files are named by the video's content (the sha256 of its bytes; a motion clip rendered on the fly
by its address), the frames' short side, the stride and the TV-L1 settings: a dataset moved or
copied keeps its store, a video replaced in place never gets the old video's flow, other settings
get other files. A video's key is cached beside the store by path, size and modification time, so
a run hashes only what is new. ``build`` computes what is missing, each process of a torchrun its
share, resumable (each file written atomically), with progress and the time left; the reading side
(``frames``, ``read``) needs no torch.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Dict, Iterable, List

import numpy as np

from ..core.artifacts import atomic_write_bytes, atomic_write_text


def file_sha256(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


class FlowStore:
    """Flow files of one setting (TV-L1 settings ``tag``, ``resize``, ``stride``) under ``folder``."""

    def __init__(self, folder, tag: str, resize: int, stride: int):
        self.folder = Path(folder)
        self.resize, self.stride = int(resize), int(stride)
        self.tag = hashlib.sha1(f"{tag}|resize{resize}|stride{stride}".encode()).hexdigest()[:12]
        self.keys: Dict[str, str] = {}

    # -- names ------------------------------------------------------------------------------------
    def _hash_cache(self) -> Path:
        return self.folder / "hashes.json"

    def index(self, paths: Iterable[str], progress=None, save: bool = True) -> Dict[str, str]:
        """The content key of every video (cached by path, size and modification time in
        hashes.json beside the store); ``save`` writes the cache back (one process of a run)."""
        paths = list(dict.fromkeys(paths))
        try:
            cache = json.loads(self._hash_cache().read_text())
        except (OSError, ValueError):
            cache = {}
        todo = []
        for p in paths:
            if p.startswith("synthetic://"):
                self.keys[p] = hashlib.sha256(p.encode()).hexdigest()
                continue
            try:
                st = os.stat(p)
            except OSError:
                continue  # a missing file: left to the reader, which says so
            hit = cache.get(p)
            if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
                self.keys[p] = hit[2]
            else:
                todo.append((p, st))
        it = progress(todo, desc="hashing videos (once)", unit="video") if (progress and todo) else todo
        for p, st in it:
            self.keys[p] = file_sha256(p)
            cache[p] = [st.st_size, st.st_mtime_ns, self.keys[p]]
        if save and todo:
            atomic_write_text(self._hash_cache(), json.dumps(cache))
        return self.keys

    def path(self, video: str) -> Path:
        if video not in self.keys:
            self.index([video], save=False)
        return self.folder / self.tag / f"{self.keys.get(video, 'missing')}.npy"

    def has(self, video: str) -> bool:
        p = self.path(video)
        if not p.is_file():
            return False
        try:
            self._open(p)
            return True
        except (OSError, ValueError):
            return False  # a damaged file is recomputed, not trusted

    # -- reading (no torch) ------------------------------------------------------------------------
    @staticmethod
    def _open(p: Path) -> np.memmap:
        m = np.load(p, mmap_mode="r")
        if m.ndim != 4 or m.shape[1] != 2:
            raise ValueError(f"{p}: not a flow file")
        return m

    def frames(self, video: str) -> int:
        """How many frames the video has (its stored flow has one entry a frame): the count that
        really decodes, known without decoding it again."""
        return int(self._open(self.path(video)).shape[0])

    def shape(self, video: str):
        """(H, W) of the video's frames at the store's short side."""
        return tuple(int(d) for d in self._open(self.path(video)).shape[2:])

    def read(self, video: str, indices: np.ndarray, y: int, x: int, size: int) -> np.ndarray:
        """The clip's pairs (its frames but the last) cropped at (y, x): float16 (T-1, 2, size,
        size), read from the file without loading the rest of it."""
        m = self._open(self.path(video))
        try:
            return np.array(m[np.asarray(indices)[:-1], :, y:y + size, x:x + size])
        finally:
            del m  # unmapped: what was read does not stay resident

    def size_bytes(self) -> int:
        d = self.folder / self.tag
        return sum(f.stat().st_size for f in d.glob("*.npy")) if d.is_dir() else 0

    # -- computing ---------------------------------------------------------------------------------
    def build(self, videos: List[str], load_frames: Callable[[str], np.ndarray], compute: Callable,
              progress=None, rank: int = 0, world: int = 1, desc: str = "computing flow (once)") -> Dict:
        """Compute the flow of every video not yet in the store: this process takes every
        ``world``-th one from ``rank`` (the store is shared). ``load_frames(video)`` gives its
        frames at the store's short side; ``compute(frames, stride)`` its flow. Returns counts and
        the unreadable videos with their reasons."""
        from ..core.errors import VideoError

        mine = [v for i, v in enumerate(videos) if i % world == rank]
        todo = [v for v in mine if not self.has(v)]
        rep = {"videos": len(videos), "mine": len(mine), "computed": 0, "unreadable": {}}
        it = progress(todo, desc=desc, unit="video") if (progress and todo) else todo
        for v in it:
            try:
                frames = load_frames(v)
            except VideoError as e:
                rep["unreadable"][v] = str(e)
                continue
            flow = compute(frames, self.stride)
            buf = _npy_bytes(flow.astype(np.float16))
            atomic_write_bytes(self.path(v), buf)
            rep["computed"] += 1
        return rep


def _npy_bytes(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def tvl1_flow(solver, frames: np.ndarray, stride: int = 1, batch: int = 32, device: str = "cpu") -> np.ndarray:
    """uint8 RGB frames (T, H, W, 3) -> float32 flow (T, 2, H, W) in pixels, entry t from frame t
    to frame (t + stride) % T, by the TV-L1 layers ``solver`` in batches of ``batch`` pairs."""
    import torch

    from .tvl1 import to_grey

    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        grey = to_grey(x)
        t = len(grey)
        nxt = (torch.arange(t) + stride) % t
        out = []
        for i in range(0, t, batch):
            j = min(i + batch, t)
            out.append(solver(grey[i:j].to(device), grey[nxt[i:j]].to(device)).float().cpu())
        return torch.cat(out).numpy()


def open_store(folder, preset: str, resize: int, stride: int, camera: str = "none",
               illumination: str = "none") -> FlowStore:
    """The store of one TV-L1 solver (preset, camera and illumination options) at a short side and
    stride (the settings key its files)."""
    from ..data.clipspec import TVL1_PRESETS

    if preset not in TVL1_PRESETS:
        raise ValueError(f"TV-L1 preset {preset!r}: choose one of {', '.join(TVL1_PRESETS)}")
    from .tvl1 import TVL1

    store = FlowStore(folder, repr(TVL1.preset(preset, camera, illumination)), resize, stride)
    store.solver = (preset, camera, illumination)  # what build_store computes its missing flow with
    return store


def build_store(store: FlowStore, items, spec, preset: str, device: str = "cpu", progress=None, rank: int = 0,
                world: int = 1, desc: str = "computing flow (once)", camera: str = "none",
                illumination: str = "none") -> Dict:
    """Index the videos of ``items`` (rank 0 saves the hashes) and compute the flow of this
    process's share of them (``FlowStore.build``), by the TV-L1 layers on ``device``. Returns
    ``FlowStore.build``'s report with the store's size."""
    from ..data.datasets import VideoItem, load_frames
    from .tvl1 import TVL1

    videos = [it.path for it in items]
    store.index(videos, progress=progress if rank == 0 else None, save=rank == 0)
    solver = TVL1.preset(preset, camera, illumination).to(device).eval()
    rep = store.build(videos, lambda v: load_frames(VideoItem(v, 0), spec),
                      lambda frames, stride: tvl1_flow(solver, frames, stride, device=device),
                      progress=progress, rank=rank, world=world, desc=desc)
    rep["bytes"] = store.size_bytes()
    return rep
