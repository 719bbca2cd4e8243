"""What regions and tracked people cost, and how well per-object labels come out.

* ``regions``: 1, 4 and 16 regions on each of two inputs (the same decoded footage twice, so only
  the model is timed, not decoding), every window of a step in one batch, against the same windows
  classified one call each, side by side on the same frames.
* ``tracks``: ``--track person`` on real footage: tracks formed, fragmentations (a track that
  begins within a second and a box-width of where another ended: the same person under a new id,
  the id switches one can count without ground truth), classifications a second and latency, for
  the clip model and, where given, the streaming student.
* ``scenes``: per-object top-1 on ``data synth --objects`` scenes, the generator's boxes standing in
  for a detector: a model trained on person crops classifying each object's crop, and a
  whole-frame model classifying the whole scene (its one label scored against every object) and
  each object's crop; a crop is the clip's tube (``data.regions.tube``), as the camera cuts it.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..core.artifacts import atomic_write_text
from ..data.sources import Source


class Footage(Source):
    """Decoded frames served as a file source (read in the loop; nothing dropped)."""

    def __init__(self, frames, uri: str, fps: float = 25.0):
        self.frames_, self.i, self.uri, self.fps = frames, 0, uri, fps

    def read(self):
        if self.i >= len(self.frames_):
            return None
        self.i += 1
        return self.frames_[self.i - 1]


def grid(n: int) -> List[str]:
    """n regions tiling the frame (1, 4, 16: 1x1, 2x2, 4x4), as --roi values in fractions."""
    side = int(round(math.sqrt(n)))
    if side * side != n:
        raise ValueError(f"regions come as squares: 1, 4, 9, 16 (got {n})")
    f = 1.0 / side
    return [f"r{i}{j}={j * f:.4f},{i * f:.4f},{f:.4f},{f:.4f}" for i in range(side) for j in range(side)]


def one_by_one(clf):
    """The same classifier taking a batch one clip a call: the unbatched reference."""
    import copy

    single = copy.copy(clf)  # shares the session
    single.classify = lambda clips: np.concatenate([clf.classify(c[None]) for c in clips])
    return single


def _run(clf, frames, regions, every: int, inputs: int, out: Path, **kw) -> Dict:
    from ..live.camera import CameraSettings, run

    lines = out / "lines.jsonl"
    if lines.exists():
        lines.unlink()
    sources = [Footage(frames, f"cam{i}") for i in range(inputs)]
    t = time.perf_counter()
    summary = run(CameraSettings.make(every=every, json_out=str(lines), regions=tuple(regions), **kw), clf=clf,
                  sources=sources)
    wall = time.perf_counter() - t
    rows = [json.loads(x) for x in lines.read_text().splitlines()]
    return {"summary": summary, "rows": rows, "wall_s": wall}


def bench_regions(model: str, video: str, counts=(1, 4, 16), inputs: int = 2, frames: int = 100, every: int = 5,
                  threads: int = 0, out: str = "runs/bench") -> Dict:
    """Classifications a second and model time per region for each count, batched and one by one."""
    from ..data.video import read_frames
    from ..device.runtime import load_classifier

    footage = list(read_frames(video, max_frames=frames))
    o = Path(out)
    o.mkdir(parents=True, exist_ok=True)
    clf = load_classifier(model, threads=threads)
    rows = []
    for n in counts:
        row = {"regions_per_input": n, "inputs": inputs}
        for how, c in (("batched", clf), ("one_by_one", one_by_one(clf))):
            r = _run(c, footage, grid(n), every, inputs, o)
            s = r["summary"]
            infer = sum(x["inference_ms"] for x in {(x["source"], x["frame"]): x for x in r["rows"]
                                                    if x["type"] == "prediction"}.values()) / inputs
            row[how] = {"classifications": s["classifications"], "seconds": round(r["wall_s"], 3),
                        "classifications_per_s": round(s["classifications"] / r["wall_s"], 2),
                        "model_ms_per_region": round(infer / max(s["classifications"], 1), 3),
                        "latency_ms_p50": s["latency_ms"]["p50"], "latency_ms_p99": s["latency_ms"]["p99"]}
        row["batched_speedup"] = round(row["one_by_one"]["model_ms_per_region"]
                                       / max(row["batched"]["model_ms_per_region"], 1e-9), 2)
        rows.append(row)
    return {"model": str(model), "video": str(video), "frames": len(footage), "every": every, "rows": rows}


def fragmentations(track_rows: List[Dict], fps: float) -> int:
    """Tracks that begin within a second and a box-width of where an earlier track ended."""
    ended, n = [], 0
    for r in track_rows:
        x, y, w, h = r["box"]
        if r["phase"] == "end":
            ended.append((r["frame"], x + w / 2, y + h / 2, max(w, h)))
        else:
            for f, cx, cy, size in ended:
                if 0 <= r["frame"] - f <= fps and math.hypot(x + w / 2 - cx, y + h / 2 - cy) <= size:
                    n += 1
                    break
    return n


def bench_tracks(models: List[str], video: str, frames: int = 300, every: int = 5, detect_every: int = 1,
                 threads: int = 0, out: str = "runs/bench") -> Dict:
    """--track person on ``video`` with each model (a clip model, a streaming student)."""
    from ..data.video import read_frames
    from ..device.runtime import load_classifier

    footage = list(read_frames(video, max_frames=frames))
    import cv2

    cap = cv2.VideoCapture(str(video))
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 25.0)
    cap.release()
    o = Path(out)
    o.mkdir(parents=True, exist_ok=True)
    res = []
    for m in models:
        clf = load_classifier(m, threads=threads)
        lines = o / "lines.jsonl"
        if lines.exists():
            lines.unlink()
        from ..live.camera import CameraSettings, run

        t = time.perf_counter()
        s = run(CameraSettings.make(every=every, json_out=str(lines), track="person", detect_every=detect_every),
                clf=clf, sources=[Footage(footage, Path(video).name, fps)])
        wall = time.perf_counter() - t
        rows = [json.loads(x) for x in lines.read_text().splitlines()]
        tracks = [r for r in rows if r["type"] == "track"]
        preds = [r for r in rows if r["type"] == "prediction"]
        lengths = {}
        for r in preds:
            lengths.setdefault(r["track_id"], []).append(r["frame"])
        res.append({"model": Path(m).name, "streaming": clf.streaming, "frames": len(footage),
                    "tracks": sum(r["phase"] == "begin" for r in tracks),
                    "tracks_classified": len(lengths), "fragmentations": fragmentations(tracks, fps),
                    "classifications": s["classifications"], "seconds": round(wall, 2),
                    "frames_per_s": round(len(footage) / wall, 2),
                    "classifications_per_s": round(s["classifications"] / wall, 2),
                    "latency_ms_p50": s["latency_ms"]["p50"], "latency_ms_p99": s["latency_ms"]["p99"],
                    "inference_ms_p50": s["inference_ms_p50"]})
    return {"video": str(video), "fps": fps, "every": every, "detect_every": detect_every, "rows": res}


def bench_scenes(root: str, crop_model: str, whole_model: Optional[str] = None, threads: int = 0) -> Dict:
    """Per-object top-1 on a scene folder's validation scenes (one clip, centred in time, per object)."""
    import cv2

    from ..data.regions import cut as cut_box
    from ..data.regions import tube
    from ..data.transforms import preprocess_clip
    from ..data.video import read_frames
    from ..device.runtime import load_classifier

    root = Path(root)
    listing = json.loads((root / "scenes.json").read_text())
    crop = load_classifier(crop_model, threads=threads)
    whole = load_classifier(whole_model, threads=threads) if whole_model else None
    hits = {"crop model on crops": [], "whole-frame model on the whole frame": [],
            "whole-frame model on crops": []}
    for v in listing["videos"]:
        if v["split"] != "val":
            continue
        path = root / v["path"]
        frames = read_frames(path)
        objects = json.loads(path.with_suffix(".boxes.json").read_text())["objects"]
        for clf, key_crop, key_whole in ((crop, "crop model on crops", None),
                                         (whole, "whole-frame model on crops", "whole-frame model on the whole frame")):
            if clf is None:
                continue
            span = clf.spec.span
            start = max(0, (len(frames) - span) // 2)
            idx = list(range(start, start + span, clf.spec.stride))
            if key_whole:
                label = clf.classes[int(np.argmax(clf.classify(preprocess_clip(frames[idx], clf.spec))[0]))]
                hits[key_whole] += [label == o["label"] for o in objects]
            side = clf.spec.resize
            for o in objects:  # the clip's tube, as the camera and train --crop person cut it
                square = tube(o["boxes"][start:start + span])
                cut = np.stack([cv2.resize(cut_box(frames[i], square), (side, side), interpolation=cv2.INTER_AREA)
                                for i in idx])
                label = clf.classes[int(np.argmax(clf.classify(preprocess_clip(cut, clf.spec))[0]))]
                hits[key_crop].append(label == o["label"])
    return {"scenes": str(root), "crop_model": str(crop_model), "whole_model": whole_model,
            "objects": len(hits["crop model on crops"]),
            "top1": {k: round(100.0 * float(np.mean(v)), 1) for k, v in hits.items() if v}}


def save(res: Dict, path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(p, json.dumps(res, indent=2))
    return p
