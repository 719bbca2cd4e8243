"""Clips for training and evaluation as torch tensors, from a dataset index: the one place of the
data path that makes tensors (the indexes, decoding and preprocessing below it are torch-free)."""
from __future__ import annotations

import logging
from typing import Dict, List, Tuple

import numpy as np
import torch

from ..core.errors import DatasetError, VideoError
from ..data.clipspec import ClipSpec
from ..data.datasets import VideoItem, load_frames
from ..data.transforms import clip_geometry, crop_clip, crop_flow, preprocess_clip, sample_indices

log = logging.getLogger(__name__)


class VideoDataset:
    """A map-style dataset (what torch's DataLoader takes): clips from a list of items. ``mode``:
    "random" (training), "center" or "multi" (testing,
    ``num_clips`` clips stacked on a leading axis). ``cache`` keeps decoded frames in memory
    (small datasets, num_workers=0). Returns ``(clip float32 (3, T, S, S), label)``."""

    def __init__(self, items: List[VideoItem], spec: ClipSpec, mode: str = "center", num_clips: int = 1,
                 flip: bool = True, cache: bool = False, seed: int = 0, substitute: bool = True):
        if not items:
            raise DatasetError("the dataset subset is empty")
        self.items, self.spec, self.mode, self.num_clips = list(items), spec, mode, num_clips
        self.flip, self.cache, self.seed = flip, cache, seed
        # training replaces an unreadable video by the next readable one; evaluation must not (a test
        # set would count duplicates): with substitute=False it gets None, and predict() leaves it out
        self.substitute = substitute
        self.epoch = 0
        self._frames: Dict[int, np.ndarray] = {}
        self.unreadable: Dict[str, str] = {}

    def __len__(self):
        return len(self.items)

    def set_epoch(self, epoch: int):
        """Random crops and starts are a function of (seed, epoch, index): resumable and reproducible."""
        self.epoch = epoch

    def frames(self, i: int) -> np.ndarray:
        if i in self._frames:
            return self._frames[i]
        f = load_frames(self.items[i], self.spec)
        if self.cache:
            self._frames[i] = f
        return f

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


class ClipSet(VideoDataset):
    """Clips for training and evaluation as dicts: RGB, cached flow cropped the same way, or both.
    Loading, caching and skipping unreadable videos are VideoDataset's."""

    def __init__(self, items: List[VideoItem], spec: ClipSpec, train: bool, flip: bool, rgb: bool = True,
                 flow_cache=None, seed: int = 0, cache_frames: bool = True):
        super().__init__(items, spec, mode="random" if train else "center", flip=flip, cache=cache_frames, seed=seed,
                         substitute=train)
        self.rgb, self.flow_cache = rgb, flow_cache

    def _sample(self, frames, j):
        rng = np.random.default_rng([self.seed, self.epoch, j])
        (idx,) = sample_indices(len(frames), self.spec, self.mode, rng)
        geom = clip_geometry(frames.shape[1], frames.shape[2], self.spec, self.mode == "random", rng, self.flip)
        out = {"label": self.items[j].label, "index": j}
        if self.rgb:
            out["rgb"] = torch.from_numpy(crop_clip(frames[idx], geom, self.spec))
        if self.flow_cache is not None:
            flow = self.flow_cache.get(self.items[j].path, frames, self.spec.stride)
            out["flow"] = torch.from_numpy(crop_flow(flow, idx, geom, self.spec))
        return out
