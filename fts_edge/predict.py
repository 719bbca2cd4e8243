"""`fts-edge predict`: one label per video file, offline, from any artifact (.engine, .onnx, INT8
ONNX, .pt). Several clips spread over each video are classified and their scores averaged. Imports
no torch unless the model is a checkpoint."""
from __future__ import annotations

import glob
from pathlib import Path
from typing import Dict, Iterable, List

import numpy as np

from .errors import FtsError, VideoError
from .video import VIDEO_EXTENSIONS


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


def predict(inputs: Iterable[str], model: str, clips: int = 5, k: int = 3, device=None, threads: int = 0) -> List[Dict]:
    """A row per video: the top-k classes of the averaged clip scores, or the reason it could not be read."""
    from .clips import video_clips
    from .runtime import load_classifier

    clf = load_classifier(model, device=device, threads=threads)
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
        clf.close()
    return rows
