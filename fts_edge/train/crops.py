"""Training videos as the camera shows them with ``--track person``: each person (or object) cut out
of every frame with ``regions.person_crop``, written once as a video of its own in the folder
layout ``OUT/{train,val}/<class>/``, so the networks train on what the tracked camera feeds them.

Where the boxes come from:

* a scene folder (``fts-edge data synth --objects N``: ``scenes.json`` and a ``.boxes.json``
  beside each video): the boxes written with it, one crop video per object, labelled with the
  object's class;
* any other dataset: a person detector and ByteTrack over each video, the same ones the camera
  runs (``device.people``); the person tracked longest is the video's actor and keeps the
  video's class. A video where nobody is tracked is listed, not cropped.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from ..core.errors import DatasetError
from ..data.regions import person_crop


def is_scene_folder(root) -> bool:
    return root is not None and (Path(root) / "scenes.json").is_file()


def _square(frames: List[np.ndarray], boxes, side: int) -> np.ndarray:
    import cv2

    return np.stack([cv2.resize(person_crop(f, b), (side, side), interpolation=cv2.INTER_AREA)
                     for f, b in zip(frames, boxes)])


def _fps(path) -> float:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        return float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or 25.0
    finally:
        cap.release()


def crop_scenes(root, out, side: int, progress: Optional[Callable] = None) -> Dict:
    """One crop video per object of every scene, from the boxes written beside it."""
    from ..data.video import read_frames, write_video

    root, out = Path(root), Path(out)
    listing = json.loads((root / "scenes.json").read_text())
    counts, videos = {"train": 0, "val": 0}, listing["videos"]
    it = progress(videos, desc="cropping scenes", unit="video") if progress else videos
    for v in it:
        src = root / v["path"]
        objects = json.loads(src.with_suffix(".boxes.json").read_text())["objects"]
        frames = None
        for k, o in enumerate(objects):
            dst = out / v["split"] / o["label"] / f"{src.stem}_o{k}.avi"
            if not dst.exists():
                frames = list(read_frames(src)) if frames is None else frames
                n = min(len(frames), len(o["boxes"]))
                write_video(dst, _square(frames[:n], o["boxes"][:n], side))
            counts[v["split"]] += 1
    return {**counts, "classes": listing["classes"], "from": "the boxes beside each scene", "untracked": []}


def crop_tracked(index, out, side: int, detector: str = "hog", progress: Optional[Callable] = None) -> Dict:
    """The person tracked longest in every video of ``index`` (a DatasetIndex), cut out frame by
    frame (before the track begins and after it ends: its first and last box)."""
    from ..data.video import read_frames, write_video
    from ..device.people import PeopleTracker, make_detector

    out = Path(out)
    counts, untracked = {"train": 0, "val": 0}, []
    items = [("train", v) for v in index.train] + [("val", v) for v in index.test]
    it = progress(items, desc="tracking people", unit="video") if progress else items
    det = make_detector(detector)
    for split, v in it:
        name = index.classes[v.label]
        dst = out / split / name / f"{Path(v.path).stem}.avi"
        if dst.exists():
            counts[split] += 1
            continue
        frames = list(read_frames(v.path))
        tracker = PeopleTracker(det, _fps(v.path))
        seen: Dict[int, Dict[int, tuple]] = {}
        for i, f in enumerate(frames):
            for tid, box in tracker(f)[0].items():
                seen.setdefault(tid, {})[i] = box
        if not seen:
            untracked.append(v.path)
            continue
        track = seen[max(seen, key=lambda t: len(seen[t]))]
        first, last = min(track), max(track)
        boxes = [track.get(i) or (track[first] if i < first else track[last]) for i in range(len(frames))]
        for i in range(first, last + 1):  # a frame the track was held through keeps the box before it
            boxes[i] = track.get(i, boxes[i - 1])
        write_video(dst, _square(frames, boxes, side))
        counts[split] += 1
    if not counts["train"] or not counts["val"]:
        which = "validation" if counts["train"] else "training"
        raise DatasetError(f"the person detector ({detector}) tracked nobody in the {which} videos ({len(untracked)} "
                           "videos without a track): --crop person needs people it can find")
    return {**counts, "classes": list(index.classes), "from": f"{detector} and ByteTrack", "untracked": untracked}
