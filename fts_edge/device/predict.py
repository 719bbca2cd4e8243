"""`fts-edge predict` and `fts-edge evaluate`: offline use of any artifact (.engine, .onnx, INT8 ONNX,
.pt). predict gives one label per video file (several clips averaged); evaluate scores a dataset's
test split. Imports no torch unless the model is a checkpoint."""
from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import numpy as np

from ..core.errors import FtsError, VideoError
from ..core.settings import Settings, setting
from ..data.video import VIDEO_EXTENSIONS


@dataclass(frozen=True)
class PredictSettings(Settings):
    """`fts-edge predict`: clips per video (averaged), classes reported, the runtime's device and threads."""

    clips: int = setting(5, lo=1, help="clips per video, averaged")
    topk: int = setting(3, lo=1, help="classes reported per video")
    device: Optional[str] = None
    threads: int = setting(0, lo=0, hi=256)


@dataclass(frozen=True)
class EvaluateSettings(Settings):
    """`fts-edge evaluate`: the split (the bundle's, or another), how many test videos, the runtime."""

    dataset: Optional[str] = None
    root: Optional[str] = None
    splits: Optional[str] = None
    split: int = setting(1, lo=1, hi=3)
    limit: Optional[int] = setting(None, lo=1, help="score only the first N test videos")
    device: Optional[str] = None
    threads: int = setting(0, lo=0, hi=256)
    json_out: Optional[str] = None

    def __post_init__(self):
        super().__post_init__()
        if self.json_out:
            from ..core.artifacts import check_output_file
            check_output_file(self.json_out, "--json-out")


def expand_inputs(inputs: Iterable[str]) -> List[str]:
    """Files, folders (their videos, recursively) and glob patterns -> video paths, in order."""
    out: List[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in VIDEO_EXTENSIONS)
        elif p.exists():
            out.append(str(p))
        else:
            found = sorted(glob.glob(item, recursive=True))
            if not found:
                raise FtsError(f"{item}: no such file, folder or pattern")
            out += [f for f in found if Path(f).suffix.lower() in VIDEO_EXTENSIONS]
    if not out:
        raise FtsError("no videos among the inputs (" + ", ".join(VIDEO_EXTENSIONS) + ")")
    return out


def predict(inputs: Iterable[str], model, clips: int = 5, k: int = 3, device=None, threads: int = 0, load=None,
            close: bool = True) -> List[Dict]:
    """A row per video: the top-k classes of the averaged clip scores, or the reason it could not be read.

    Args:
        inputs: files, folders (searched recursively) and glob patterns.
        model: a path or a Classifier.
        clips: clips per video, averaged.
        k: classes reported per video.
        device, threads: the runtime's device and threads.
        load: how a path becomes a Classifier (``fts_edge.api.load_classifier`` takes checkpoints).
        close: free the classifier at the end (False: the caller keeps using it).

    Returns:
        One dict per video: video, label, score, top, clips; or video and error.
    """
    from ..data.clips import video_clips
    from .runtime import as_classifier

    clf = as_classifier(model, load, device, threads)
    if clf.spec.crop == "person":  # it can still score videos that are such crops already (train's crops/)
        import logging

        logging.getLogger(__name__).warning(
            "this model reads crops around tracked people: each video is classified whole, as if it were such a crop "
            "(for people in whole frames: fts-edge camera --input VIDEO --track person)")
    rows = []
    try:
        for path in expand_inputs(inputs):
            try:
                x = video_clips(path, clf.spec, clips)
            except VideoError as e:
                rows.append({"video": path, "error": str(e)})
                continue
            probs = clf.classify(x).mean(0)
            order = np.argsort(-probs)[:k]
            rows.append({"video": path, "label": clf.classes[order[0]], "score": round(float(probs[order[0]]), 4),
                         "top": [{"label": clf.classes[i], "score": round(float(probs[i]), 4)} for i in order],
                         "clips": int(len(x))})
    finally:
        if close:
            clf.close()
    return rows


def evaluate_artifact(model, index=None, limit: Optional[int] = None, device=None, threads: int = 0, load=None) -> Dict:
    """Score any artifact (.engine, .onnx, INT8 ONNX, .pt) on a dataset's test split: top-1, top-5,
    per-class counts and the confusion matrix; unreadable videos are left out and listed. The split
    is the one the model's bundle names unless ``index`` is given.

    Args:
        model: a path or a Classifier.
        index: a DatasetIndex, or None for the split the bundle names.
        limit: score only the first N test videos.
        device, threads: the runtime's device and threads.
        load: how a path becomes a Classifier.

    Returns:
        model, backend, classes, n, top1, top5, clips_per_s, per_class_n, confusion and
        excluded_unreadable.
    """
    from ..data.clips import dataset_index_from_meta
    from ..data.datasets import load_frames
    from ..data.transforms import preprocess_clip, sample_indices
    from .runtime import as_classifier

    clf = as_classifier(model, load, device, threads)
    try:
        index = index if index is not None else dataset_index_from_meta(clf.meta)
        if index is None:
            raise FtsError(f"{model}: its training dataset is not reachable here; name one with --dataset and --root")
        if list(index.classes) != list(clf.classes):
            raise FtsError(f"{model}: the dataset's classes {index.classes[:4]}... are not the model's "
                           f"{clf.classes[:4]}...")
        items = index.test[:limit] if limit else index.test
        n = len(clf.classes)
        cm = np.zeros((n, n), np.int64)
        top5, unreadable, t_inf = 0, {}, 0.0
        import time
        for item in items:
            try:
                frames = load_frames(item, clf.spec)
            except VideoError as e:
                unreadable[item.path] = str(e)
                continue
            (ix,) = sample_indices(len(frames), clf.spec, "center")
            t = time.perf_counter()
            p = clf.classify(preprocess_clip(frames[ix], clf.spec))[0]
            t_inf += time.perf_counter() - t
            cm[item.label, int(np.argmax(p))] += 1
            top5 += int(item.label in np.argsort(-p)[:5])
        total = int(cm.sum())
        if not total:
            raise FtsError("no test video of this split can be read")
        return {"model": str(model), "backend": clf.describe(), "classes": list(clf.classes), "n": total,
                "top1": 100.0 * np.trace(cm) / total, "top5": 100.0 * top5 / total,
                "clips_per_s": total / max(t_inf, 1e-9), "per_class_n": cm.sum(1).tolist(),
                "confusion": cm.tolist(), "excluded_unreadable": unreadable}
    finally:
        clf.close()
