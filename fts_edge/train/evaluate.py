"""The paper-style table: RGB, flow (the teacher), two-stream (average of the two softmax scores)
and the distilled student; top-1 with its 95% interval, top-5 and clips/s, in Markdown and JSON,
with a confusion-matrix picture for each row, and the student's lead over each other row with a
paired 95% interval (is a gap of a few points on these clips real, or noise?). The teacher is
evaluated as deployed: TV-L1 layers on the RGB clip, then its network (no cached flow)."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..core.artifacts import atomic_write_text
from ..core.errors import DatasetError
from ..data.clipspec import ClipSpec
from ..data.datasets import index_from_settings
from ..nets.checkpoint import build_from_checkpoint, load_checkpoint, load_teacher
from .data import ClipSet


# -- scoring a network on a split -----------------------------------------------------------------------------
@torch.no_grad()
def score(model, ds: ClipSet, key: str, batch_size: int = 16, device="cpu", flow_input=False) -> Dict:
    """Softmax scores and labels for every clip of ``ds``, with the throughput (clips/s).

    Args:
        model: the network.
        ds: the ClipSet.
        key: "rgb" or "flow".
        batch_size: clips a batch.
        device: where it runs.
        flow_input: the model reads flow (the teacher from its cached flow).

    Returns:
        probs (N, classes), labels, clips_per_s and the unreadable videos.
    """
    model.eval()
    dtype = next(model.parameters()).dtype  # float64 for a run in fp64, float32 otherwise
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0,
                                         collate_fn=_readable_only)
    probs, labels, seconds = [], [], 0.0
    for batch in loader:
        if batch is None:  # every video of this batch was unreadable
            continue
        x = batch[key].to(device, dtype)
        t = time.perf_counter()
        if flow_input:
            logits = model.forward_head(model.forward_flow_features(x))
        else:
            logits = model(x)
        seconds += time.perf_counter() - t
        probs.append(F.softmax(logits.float(), 1).cpu())
        labels.append(batch["label"])
    if not probs:
        raise DatasetError("no test video of this split can be read")
    p, y = torch.cat(probs), torch.cat(labels)
    return {"probs": p, "labels": y, "clips_per_s": len(y) / max(seconds, 1e-9),
            "unreadable": dict(getattr(ds, "unreadable", {}))}


def _readable_only(batch):
    """Collate the clips that could be read; unreadable ones (None) are left out, never replaced."""
    batch = [b for b in batch if b is not None]
    return torch.utils.data.default_collate(batch) if batch else None


def metrics(probs: torch.Tensor, labels: torch.Tensor) -> Dict:
    k = min(5, probs.shape[1])
    topk = probs.topk(k, 1).indices
    return {"top1": float((topk[:, 0] == labels).float().mean() * 100),
            "top5": float((topk == labels[:, None]).any(1).float().mean() * 100), "n": int(len(labels))}


Z95 = 1.959964  # the normal quantile of a two-sided 95% interval


def wilson_interval(correct: int, n: int, z: float = Z95) -> List[float]:
    """The 95% Wilson score interval of a top-1 of ``correct`` in ``n`` clips, in percent: how far
    the accuracy on another draw of as many clips could plausibly lie (it stays inside 0-100 and
    is not empty at 0 or n correct, as the plain normal interval is)."""
    if n <= 0:
        return [0.0, 100.0]
    p = correct / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(100 * max(0.0, mid - half), 1) + 0.0, round(100 * min(1.0, mid + half), 1) + 0.0]  # no -0.0


def paired_difference(a_right: torch.Tensor, b_right: torch.Tensor, z: float = Z95) -> Dict:
    """Top-1 of A minus top-1 of B on the same clips, in points, with its 95% interval from the
    clip-by-clip differences (paired: clips both get right or both get wrong carry no noise, so the
    interval is much narrower than two separate intervals would suggest)."""
    d = a_right.double() - b_right.double()
    n = len(d)
    mean = float(d.mean()) if n else 0.0
    se = float(d.std(unbiased=True)) / math.sqrt(n) if n > 1 else float("inf")
    points = [round(100 * v, 1) + 0.0 for v in (mean, mean - z * se, mean + z * se)]  # + 0.0: no -0.0
    return {"points": points[0], "ci95": points[1:], "n": n}


def confusion(probs: torch.Tensor, labels: torch.Tensor, n: int) -> np.ndarray:
    cm = np.zeros((n, n), np.int64)
    for t, p in zip(labels.tolist(), probs.argmax(1).tolist()):
        cm[t, p] += 1
    return cm


def evaluate(rgb: Optional[str], teacher: Optional[str], student: Optional[str], index=None, out=None,
             batch_size: int = 16, threads: int = 0) -> Dict:
    """Rows for each checkpoint given (two-stream when both RGB and teacher are). Writes
    table.md, table.json and confusion_<row>.png to ``out`` if given.

    Args:
        rgb, teacher, student: checkpoints (any may be None).
        index: the dataset (None: the one the checkpoints were trained on).
        out: the table's folder, or None.
        batch_size: clips a batch.
        threads: torch threads (0: its choice).

    Returns:
        rows (method, top1, top5, n, clips/s, confusion) and diagnostics.
    """
    if threads:
        torch.set_num_threads(threads)
    given = (("RGB", rgb), ("flow (teacher)", teacher), ("distilled student", student))
    cks = {k: load_checkpoint(p) for k, p in given if p}
    if not cks:
        raise ValueError("give at least one checkpoint")
    first = next(iter(cks.values()))
    spec = ClipSpec.from_dict(first["clip_spec"])
    classes = first["classes"]
    want_role = {"RGB": ("rgb",), "flow (teacher)": ("teacher",), "distilled student": ("student",)}
    flag = {"RGB": "--rgb", "flow (teacher)": "--teacher", "distilled student": "--student"}
    for name, ck in cks.items():
        if ck.get("role") not in want_role[name]:
            from ..core.errors import CheckpointError
            raise CheckpointError(f"{flag[name]}: a {ck.get('role')!r} checkpoint, not a {want_role[name][0]!r} one; "
                                  "the table would name it wrongly")
        # rgb_illumination may differ: each model reads the clips as it was trained to, below
        own = ClipSpec.from_dict(ck["clip_spec"])
        if own.replace(rgb_illumination=spec.rgb_illumination) != spec or ck["classes"] != classes:
            from ..core.errors import CheckpointError
            raise CheckpointError(f"{name}: trained on other clips or classes than the others; the table compares like "
                                  "with like")
    if index is None:
        index = index_from_settings(first["config"])
    sets = {}  # one clip set a preprocessing: the same clips, in the same order, for every model

    def clips_of(ck):
        own = ClipSpec.from_dict(ck["clip_spec"])
        if own not in sets:
            sets[own] = ClipSet(index.test, own, False, index.flip)
        return sets[own]

    # every model takes the RGB clip: the teacher computes its flow with the TV-L1 layers, as deployed
    scores = {name: score(build_from_checkpoint(ck), clips_of(ck), "rgb", batch_size) for name, ck in cks.items()}
    if "RGB" in scores and "flow (teacher)" in scores:
        a, b = scores["RGB"], scores["flow (teacher)"]
        scores["two-stream"] = {"probs": (a["probs"] + b["probs"]) / 2, "labels": a["labels"],
                                "clips_per_s": 1.0 / (1.0 / a["clips_per_s"] + 1.0 / b["clips_per_s"])}
    order = [k for k in ("RGB", "flow (teacher)", "two-stream", "distilled student") if k in scores]
    rows = []
    for name in order:
        s = scores[name]
        m = metrics(s["probs"], s["labels"])
        right = round(m["top1"] * m["n"] / 100)  # clips right
        rows.append({"method": name, "top1": m["top1"], "top1_ci95": wilson_interval(right, m["n"]), "top5": m["top5"],
                     "clips_per_s": s["clips_per_s"], "n": m["n"],
                     "per_class_n": np.bincount(s["labels"].numpy(), minlength=len(classes)).tolist(),
                     "confusion": confusion(s["probs"], s["labels"], len(classes)).tolist()})
    unreadable = next(iter(scores.values())).get("unreadable", {})
    result = {"rows": rows, "classes": classes, "clip_spec": spec.to_dict(), "test_videos": len(index.test),
              "excluded_unreadable": unreadable, "diagnostics": diagnostics(scores)}
    if out:
        write_table(result, Path(out))
    return result


def features(model, ds: ClipSet, batch_size: int = 16, projection=None) -> torch.Tensor:
    """The pooled features before the classifier for every clip of ``ds`` (RGB input; the teacher
    computes its flow with its TV-L1 layers)."""
    model.eval()
    out = []
    with torch.no_grad():
        for batch in torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0):
            f = model.forward_features(batch["rgb"])
            out.append(projection(f) if projection is not None else f)
    return torch.cat(out)


def student_mimic_fit(student: str, teacher: str, split: str = "val", max_clips: int = 250,
                      batch_size: int = 16, cache: Optional[Dict] = None) -> Dict:
    """``distill.mimic_fit`` of a student checkpoint against its teacher on clips of the student's
    own dataset (up to ``max_clips`` clips spread evenly over the split): did the student learn
    the teacher's features, or collapse onto their mean? Pass the same ``cache`` dict for several
    students of one teacher and its features (TV-L1 and all) are computed once.

    Args:
        student, teacher: checkpoints.
        split: train or test.
        max_clips: clips at most.
        batch_size: clips a batch.
        cache: the teacher's features by split, shared between students.

    Returns:
        distill.mimic_fit's figures.
    """
    from .distill import FeatureProjection, mimic_fit

    sck = load_checkpoint(student)
    spec = ClipSpec.from_dict(sck["clip_spec"])
    tck = load_teacher(teacher, spec, sck["classes"])
    s_net, t_net = build_from_checkpoint(sck, student), build_from_checkpoint(tck, teacher)
    proj = None
    if sck.get("projection"):
        proj = FeatureProjection(s_net.num_features, t_net.num_features)
        proj.load_state_dict(sck["projection"])
        proj.eval()
    index = index_from_settings(sck["config"])
    items = index.test if split == "val" else index.train
    items = items[::max(1, len(items) // max_clips)][:max_clips]
    ds = ClipSet(items, spec, False, index.flip)
    key = (str(Path(teacher).resolve()), Path(teacher).stat().st_mtime_ns, split, tuple(str(i.path) for i in items))
    f_t = cache.get(key) if cache is not None else None
    if f_t is None:
        f_t = features(t_net, ds, batch_size)
        if cache is not None:
            cache[key] = f_t
    fit = mimic_fit(features(s_net, ds, batch_size, proj), f_t)
    fit["split"] = split
    return fit


def diagnostics(scores: Dict) -> Dict:
    """How the rows' errors relate, clip by clip (percentages of the val clips): how often two
    methods predict the same class; of the clips the teacher gets wrong, how many each RGB-side
    network also gets wrong (does the student inherit the teacher's errors?); and how many clips
    at least one of RGB and the teacher gets right (what a perfect combination of the two streams
    would reach)."""
    names = [k for k in ("RGB", "flow (teacher)", "distilled student") if k in scores]
    if not names:
        return {}
    y = scores[names[0]]["labels"]
    pred = {k: scores[k]["probs"].argmax(1) for k in names}
    pct = lambda m: round(float(m.float().mean()) * 100, 1)  # noqa: E731
    out: Dict = {"agreement": {f"{a} / {b}": pct(pred[a] == pred[b])
                               for i, a in enumerate(names) for b in names[i + 1:]}}
    if "flow (teacher)" in pred:
        wrong = pred["flow (teacher)"] != y
        out["teacher_wrong"] = pct(wrong)
        if int(wrong.sum()):
            out["also_wrong_where_teacher_is"] = {k: pct((pred[k] != y)[wrong]) for k in names
                                                  if k != "flow (teacher)"}
        if "RGB" in pred:
            out["rgb_or_teacher_right"] = pct((pred["RGB"] == y) | ~wrong)
    student = "distilled student"
    if student in pred:  # the student against each other row, paired over the same clips
        others = [k for k in ("two-stream", "flow (teacher)", "RGB") if k in scores]
        out["student_minus"] = {k: paired_difference(pred[student] == y, scores[k]["probs"].argmax(1) == y)
                                for k in others}
    return out


def diagnostics_text(result: Dict) -> str:
    d = result.get("diagnostics") or {}
    lines = [f"agreement {k}: {v:.1f}%" for k, v in d.get("agreement", {}).items()]
    if "also_wrong_where_teacher_is" in d:
        lines.append(f"the teacher is wrong on {d['teacher_wrong']:.1f}% of clips; of those, wrong too: " +
                     ", ".join(f"{k} {v:.0f}%" for k, v in d["also_wrong_where_teacher_is"].items()))
    if "rgb_or_teacher_right" in d:
        lines.append(f"RGB or the teacher right: {d['rgb_or_teacher_right']:.1f}% (a perfect two-stream combination)")
    for k, v in d.get("student_minus", {}).items():
        lo, hi = v["ci95"]
        lines.append(f"distilled student - {k}: {v['points']:+.1f} points (95% interval {lo:+.1f} to {hi:+.1f}, "
                     f"paired over the {v['n']} clips)")
    return "\n".join(lines)


def markdown(result: Dict) -> str:
    lines = ["| method | top-1 | top-1 95% interval | top-5 | clips/s | test clips |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in result["rows"]:
        lo, hi = r.get("top1_ci95", (float("nan"), float("nan")))
        lines.append(f"| {r['method']} | {r['top1']:.1f} | {lo:.1f}-{hi:.1f} | {r['top5']:.1f} "
                     f"| {r['clips_per_s']:.1f} | {r['n']} |")
    if result["rows"] and "per_class_n" in result["rows"][0]:
        counts = ", ".join(f"{c} {n}" for c, n in zip(result["classes"], result["rows"][0]["per_class_n"]))
        lines.append(f"\ntest clips per class: {counts}")
    for path, why in sorted(result.get("excluded_unreadable", {}).items()):
        lines.append(f"excluded (unreadable): {path}: {why}")
    return "\n".join(lines)


def write_table(result: Dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    extra = diagnostics_text(result)
    tail = "\n" + extra.replace("\n", "  \n") + "\n" if extra else ""
    atomic_write_text(out / "table.md", markdown(result) + "\n" + tail)
    atomic_write_text(out / "table.json", json.dumps(result, indent=2))
    from .plots import confusion_png

    for r in result["rows"]:
        confusion_png(np.array(r["confusion"]), result["classes"], f"{r['method']}: top-1 {r['top1']:.1f}%",
                      out / f"confusion_{slug(r['method'])}.png")


def slug(s: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in s).strip("_").replace("__", "_")


