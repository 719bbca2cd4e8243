"""Clips for training and evaluation as torch tensors, from a dataset index: the one place of the
data path that makes tensors (the indexes, decoding and preprocessing below it are torch-free)."""
from __future__ import annotations

import logging
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from ..core.errors import DatasetError, VideoError
from ..data.clipspec import ClipSpec
from ..data.datasets import VideoItem, load_frames
from ..data.transforms import clip_geometry, crop_clip, orient_flow, preprocess_clip, sample_indices
from ..data.video import ShortVideo, declared_frames, read_frames_at

log = logging.getLogger(__name__)


class VideoDataset:
    """A map-style dataset (what torch's DataLoader takes): clips from a list of items. ``mode``:
    "random" (training), "center" or "multi" (testing, ``num_clips`` clips stacked on a leading
    axis). Returns ``(clip float32 (3, T, S, S), label)``; keeps no frames."""

    def __init__(self, items: List[VideoItem], spec: ClipSpec, mode: str = "center", num_clips: int = 1,
                 flip: bool = True, seed: int = 0, substitute: bool = True):
        if not items:
            raise DatasetError("the dataset subset is empty")
        self.items, self.spec, self.mode, self.num_clips = list(items), spec, mode, num_clips
        self.flip, self.seed = flip, seed
        # training replaces an unreadable video by the next readable one; evaluation must not (a test
        # set would count duplicates): with substitute=False it gets None, and predict() leaves it out
        self.substitute = substitute
        self.epoch = 0
        self.unreadable: Dict[str, str] = {}

    def __len__(self):
        return len(self.items)

    def set_epoch(self, epoch: int):
        """Random crops and starts are a function of (seed, epoch, index): resumable and reproducible."""
        self.epoch = epoch

    def frames(self, i: int) -> np.ndarray:
        return load_frames(self.items[i], self.spec)

    def __getitem__(self, i: int) -> Tuple["torch.Tensor", int]:
        if not self.substitute:
            try:
                return self._sample(self.frames(i), i)
            except VideoError as e:
                self.unreadable[self.items[i].path] = str(e)
                return None
        for attempt in range(len(self.items)):
            j = (i + attempt) % len(self.items)
            if self.items[j].path in self.unreadable:
                continue
            try:
                frames = self.frames(j)
            except VideoError as e:
                self.unreadable[self.items[j].path] = str(e)
                log.warning("skipping unreadable video: %s", e)
                continue
            return self._sample(frames, j)
        raise DatasetError("every video in this subset is unreadable")

    def _sample(self, frames: np.ndarray, i: int):
        train = self.mode == "random"
        rng = np.random.default_rng([self.seed, self.epoch, i])
        idx = sample_indices(len(frames), self.spec, self.mode, rng, self.num_clips)
        clips = [preprocess_clip(frames[ix], self.spec, train=train, rng=rng, flip=self.flip) for ix in idx]
        return torch.from_numpy(np.stack(clips) if self.mode == "multi" else clips[0]), self.items[i].label


class FrameCache:
    """Whole decoded videos kept in this process's memory, at most ``budget`` bytes (least recently
    used out first), and only videos of at most a 64th of it: a small dataset (the motion set) is
    decoded once, a large one is never held, whatever its size."""

    def __init__(self, budget: int):
        from collections import OrderedDict

        self.budget, self.used = int(budget), 0
        self.videos: "OrderedDict[str, np.ndarray]" = OrderedDict()

    def fits(self, nbytes: int) -> bool:
        return 0 < nbytes <= self.budget // 64

    def get(self, key: str) -> Optional[np.ndarray]:
        v = self.videos.get(key)
        if v is not None:
            self.videos.move_to_end(key)
        return v

    def put(self, key: str, frames: np.ndarray) -> None:
        if not self.fits(frames.nbytes) or key in self.videos:
            return
        while self.used + frames.nbytes > self.budget and self.videos:
            self.used -= self.videos.popitem(last=False)[1].nbytes
        self.videos[key] = frames
        self.used += frames.nbytes


class ClipSet(torch.utils.data.Dataset):
    """Clips for training and evaluation as dicts: ``rgb`` (3, T, S, S), ``flow`` (2, T-1, S, S)
    from the flow store cropped and flipped the same way, or both; with ``label`` and ``index``.

    A clip is a function of (seed, epoch, index) alone, whichever process makes it: keys are
    ``(epoch, index)`` pairs (a plain index uses ``set_epoch``'s), so DataLoader workers, which
    hold copies of the dataset, make the same clips as the main process. Only the clip's frames
    are decoded (``read_frames_at``); whole small videos are kept in a bounded cache
    (``frame_cache_mb``, split over the ``workers``); nothing else is kept. A video's frame count
    is its stored flow's where it has one, else the container's (checked: a video that ends
    sooner is counted and the clip drawn again). Training replaces an unreadable video by the next
    readable one (``skipped`` names it); evaluation gives None for it. ``augment`` (light, shake)
    gives training's RGB clips flickering light and a hand-held camera (``augment_frames``)."""

    def __init__(self, items: List[VideoItem], spec: ClipSpec, train: bool, flip: bool, rgb: bool = True,
                 store=None, seed: int = 0, frame_cache_mb: int = 256, workers: int = 0,
                 unreadable: Optional[Dict[str, str]] = None, augment: Tuple[float, float] = (0.0, 0.0)):
        if not items:
            raise DatasetError("the dataset subset is empty")
        self.items, self.spec, self.train, self.flip, self.rgb = list(items), spec, train, flip, rgb
        self.store, self.seed, self.epoch = store, seed, 0
        self.mode = "random" if train else "center"
        self.cache = FrameCache(frame_cache_mb * (1 << 20) // max(1, workers))
        self.unreadable: Dict[str, str] = dict(unreadable or {})
        self.augment = tuple(float(a) for a in augment) if train else (0.0, 0.0)

    def __len__(self):
        return len(self.items)

    def set_epoch(self, epoch: int):
        """The epoch of plain-index keys (evaluation, the main process)."""
        self.epoch = epoch

    def __getitem__(self, key):
        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        if not self.train:
            try:
                return self._sample(epoch, i)
            except VideoError as e:
                self.unreadable[self.items[i].path] = str(e)
                return None
        skipped = []
        for attempt in range(len(self.items)):
            j = (i + attempt) % len(self.items)
            if self.items[j].path in self.unreadable:
                skipped.append(self.items[j].path)
                continue
            try:
                out = self._sample(epoch, j)
            except VideoError as e:
                self.unreadable[self.items[j].path] = str(e)
                log.warning("skipping unreadable video: %s", e)
                skipped.append(self.items[j].path)
                continue
            out["skipped"] = skipped
            return out
        raise DatasetError("every video in this subset is unreadable")

    # -- a clip --------------------------------------------------------------------------------
    def _count(self, path: str) -> int:
        if self.store is not None and self.store.has(path):
            return self.store.frames(path)
        if path.startswith("synthetic://"):
            return max(16, self.spec.span + 4)
        return declared_frames(path)

    def _frames(self, path: str, n: int, idx: np.ndarray) -> np.ndarray:
        """The frames ``idx`` of ``path`` (n frames), from the cache, a whole decode (a small video,
        then cached) or a decode of those frames alone."""
        cached = self.cache.get(path)
        if cached is not None:
            return cached[idx]
        if path.startswith("synthetic://"):
            whole = load_frames(VideoItem(path, 0), self.spec)
        else:
            h, w = self._shape
            nbytes = n * h * w * 3 if h else 0
            if not self.cache.fits(nbytes):
                return read_frames_at(path, idx, resize_short=self.spec.resize)
            whole = load_frames(VideoItem(path, 0), self.spec)
        self.cache.put(path, whole)
        if int(np.max(idx)) >= len(whole):
            raise ShortVideo(f"{path}: {len(whole)} frames decode", len(whole))
        return whole[idx]

    _shape = (0, 0)  # the size of the last frames decoded at spec.resize: the cache's guess of a video's bytes

    def _sample(self, epoch: int, j: int) -> Dict:
        path = self.items[j].path
        n = self._count(path)
        for _ in range(2):  # a video that ends before its declared count: counted, and the clip drawn again
            rng = np.random.default_rng([self.seed, epoch, j])
            (idx,) = sample_indices(max(n, 1), self.spec, self.mode, rng)
            try:
                frames = self._frames(path, n, idx) if self.rgb else None
                break
            except ShortVideo as e:
                if e.frames < 1:
                    raise VideoError(f"{path}: no frame decodes") from None
                n = e.frames
        else:
            raise VideoError(f"{path}: its frame count cannot be settled")
        if frames is not None:
            h, w = frames.shape[1:3]
            self._shape = (h, w)
        else:
            h, w = self.store.shape(path)
        geom = clip_geometry(h, w, self.spec, self.train, rng, self.flip)
        out = {"label": self.items[j].label, "index": j}
        if frames is not None:
            if any(self.augment):  # its own generator: the crop and the flow are those of the clip without it
                frames = augment_frames(frames, np.random.default_rng([self.seed, epoch, j, 7]), *self.augment)
            out["rgb"] = torch.from_numpy(crop_clip(frames, geom, self.spec))
        if self.store is not None:
            if not self.store.has(path):
                raise VideoError(f"{path}: no flow in the store (it could not be read when the store was built)")
            y, x, flip = geom
            out["flow"] = torch.from_numpy(orient_flow(self.store.read(path, idx, y, x, self.spec.size), flip))
        return out


def augment_frames(frames: np.ndarray, rng: np.random.Generator, light: float = 0.0, shake: float = 0.0):
    """A clip's frames (T, H, W, 3) uint8 as a hand-held camera in flickering light would give
    them: each frame moved by a damped random walk of ``shake`` RMS pixels a frame (at a 128-pixel
    short side) and its brightness scaled by up to +-``light``."""
    import cv2

    from ..data.synthetic import camera_path

    t, h, w = frames.shape[:3]
    out = frames
    if shake:
        path = camera_path(rng, t, shake, min(h, w) / 128.0)
        path -= path.mean(0)  # about the clip's own centre: the crop stays where it was drawn
        out = np.stack([cv2.warpAffine(f, np.float32([[1, 0, -dx], [0, 1, -dy]]), (w, h), flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_REFLECT) for f, (dx, dy) in zip(out, path)])
    if light:
        gain = 1.0 + rng.uniform(-light, light, t).astype(np.float32)
        out = np.clip(out.astype(np.float32) * gain[:, None, None, None], 0, 255).astype(np.uint8)
    return out


def collate(batch):
    """A batch of clip dicts (``skipped`` lists joined); None where every clip was unreadable."""
    batch = [b for b in batch if b is not None]
    if not batch:
        return None
    skipped = [p for b in batch for p in b.pop("skipped", [])]
    out = torch.utils.data.default_collate(batch)
    out["skipped"] = skipped
    return out
