"""Training videos as the camera shows them with ``--track person``: each person (or object) cut out
as *tubes*: the video split into runs of a clip's span of frames, each run cut with one square
around everywhere the person was during it (``regions.tube``, the camera's rule for a window), and
written once as a video of its own in the folder layout ``OUT/{train,val}/<class>/``, so the
networks train on what the tracked camera feeds them.

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
from ..data.regions import cut, tube


def is_scene_folder(root) -> bool:
    return root is not None and (Path(root) / "scenes.json").is_file()


def tubes(frames: List[np.ndarray], boxes, side: int, span: int) -> List[np.ndarray]:
    """Runs of ``span`` frames (the last run ending at the last frame; one run of all frames where
    there are fewer), each cut with its tube and resized to ``side``."""
    import cv2

    n = min(len(frames), len(boxes))
    starts = list(range(0, max(n - span, 0) + 1, span)) or [0]
    if starts[-1] + span < n:
        starts.append(n - span)
    out = []
    for s in starts:
        square = tube(boxes[s:s + span])
        out.append(np.stack([cv2.resize(cut(f, square), (side, side), interpolation=cv2.INTER_AREA)
                             for f in frames[s:s + span]]))
    return out


def _fps(path) -> float:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        return float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or 25.0
    finally:
        cap.release()


def crop_scenes(root, out, side: int, span: int, progress: Optional[Callable] = None) -> Dict:
    """The tubes of every object of every scene, from the boxes written beside it."""
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
            done = out / v["split"] / o["label"] / f"{src.stem}_o{k}.done"
            if not done.exists():
                frames = list(read_frames(src)) if frames is None else frames
                for j, t in enumerate(tubes(frames, o["boxes"], side, span)):
                    write_video(done.with_name(f"{src.stem}_o{k}_t{j}.avi"), t)
                done.touch()  # every tube of it written: a resumed run skips it
            counts[v["split"]] += len(list(done.parent.glob(f"{src.stem}_o{k}_t*.avi")))
    return {**counts, "classes": listing["classes"], "from": "the boxes beside each scene", "untracked": []}


def crop_tracked(index, out, side: int, span: int, detector: str = "hog",
                 progress: Optional[Callable] = None) -> Dict:
    """The tubes of the person tracked longest in every video of ``index`` (a DatasetIndex);
    before their track begins and after it ends they are where it began and ended."""
    from ..data.video import read_frames, write_video
    from ..device.people import PeopleTracker, make_detector

    out = Path(out)
    counts, untracked = {"train": 0, "val": 0}, []
    items = [("train", v) for v in index.train] + [("val", v) for v in index.test]
    it = progress(items, desc="tracking people", unit="video") if progress else items
    det = make_detector(detector)
    for split, v in it:
        name = index.classes[v.label]
        done = out / split / name / f"{Path(v.path).stem}.done"
        if done.exists():
            counts[split] += len(list(done.parent.glob(f"{Path(v.path).stem}_t*.avi")))
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
        made = tubes(frames, boxes, side, span)
        for j, t in enumerate(made):
            write_video(done.with_name(f"{Path(v.path).stem}_t{j}.avi"), t)
        done.parent.mkdir(parents=True, exist_ok=True)
        done.touch()
        counts[split] += len(made)
    if not counts["train"] or not counts["val"]:
        which = "validation" if counts["train"] else "training"
        raise DatasetError(f"the person detector ({detector}) tracked nobody in the {which} videos ({len(untracked)} "
                           "videos without a track): --crop person needs people it can find")
    return {**counts, "classes": list(index.classes), "from": f"{detector} and ByteTrack", "untracked": untracked}


def source_index(root, dataset: str = "folder", splits=None, split: int = 1, seed: int = 0):
    """The DatasetIndex of the videos the people are cut from."""
    from .config import TrainConfig

    return TrainConfig.from_settings(dict(role="teacher", out=str(Path(root) / "_"), dataset=dataset, root=root,
                                          splits=splits, split=split, seed=seed)).index()


def make_crops(root, out, spec, dataset: str = "folder", splits=None, split: int = 1, seed: int = 0,
               detector: str = "hog", progress: Optional[Callable] = None) -> Dict:
    """The tubes of ``root`` at ``spec``'s span (cut at ``spec.resize``) into ``out``, with
    ``out/crops.json`` saying how they were made: scenes by their boxes, other videos by the
    detector and ByteTrack."""
    from ..core.artifacts import atomic_write_text

    if is_scene_folder(root):
        rep = crop_scenes(root, out, spec.resize, spec.span, progress)
    else:
        rep = crop_tracked(source_index(root, dataset, splits, split, seed), out, spec.resize, spec.span, detector,
                           progress)
    atomic_write_text(Path(out) / "crops.json", json.dumps({
        "source": str(root), "dataset": dataset, "split": split, "span": spec.span, "side": spec.resize,
        "from": rep["from"], "train": rep["train"], "val": rep["val"], "untracked": rep["untracked"]}, indent=1))
    return rep
