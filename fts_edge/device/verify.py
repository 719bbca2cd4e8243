"""`fts-edge verify MODEL`: the first command a device user runs. The artifact (an engine, an INT8
ONNX, an ONNX) and its reference (the fp32 ONNX it was made from, or a checkpoint) classify the same
real clips; the report gives top-1 agreement, max and mean logit difference, the per-layer
precision summary of an engine, latency p50/p90/p99 and throughput, and fails past its thresholds.

Imports no torch unless the reference is a checkpoint. For TensorRT against ONNX Runtime with
every intermediate tensor compared, NVIDIA's Polygraphy does the deeper job on the device
(`polygraphy run MODEL.onnx --trt --onnxrt`; jetson/README.md).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from ..core.errors import FtsError
from ..core.settings import Settings, setting

# Default thresholds by the artifact's precision: (min top-1 agreement, max relative logit difference)
THRESHOLDS = {"fp32": (0.99, 1e-3), "fp16": (0.95, 5e-2), "int8": (0.90, None)}


@dataclass(frozen=True)
class VerifySettings(Settings):
    """`fts-edge verify`: clips compared, timed runs, the thresholds (None: by precision)."""

    clips: int = setting(16, lo=1, help="clips to compare")
    runs: int = setting(20, lo=1, help="timed runs for the latency")
    min_agreement: Optional[float] = setting(None, lo=0.0, hi=1.0)
    max_rel_diff: Optional[float] = setting(None, lo=0.0)
    device: Optional[str] = None
    threads: int = setting(0, lo=0, hi=256)
    json_out: Optional[str] = None

    def __post_init__(self):
        super().__post_init__()
        if self.json_out:
            from ..core.artifacts import check_output_file
            check_output_file(self.json_out, "--json-out")


class VerifyFailed(FtsError):
    """The artifact disagrees with its reference past the thresholds (the report says by how much)."""


def default_reference(model: str, meta: Dict) -> Optional[str]:
    """What an artifact is checked against: an engine against the fp32 ONNX it was built from, an
    INT8 or fp16 ONNX against its fp32 parent, an fp32 ONNX against its checkpoint."""
    for key in ("rebuild_from", "parent_onnx", "parent"):
        p = meta.get(key)
        if p and Path(p).exists() and Path(p).resolve() != Path(model).resolve():
            if key == "parent" and not str(p).endswith((".pt", ".pth")):
                continue
            return str(p)
    return None


def verify(model: str, against: Optional[str] = None, input_uri: Optional[str] = None, clips: int = 16,
           runs: int = 20, warmup: int = 3, min_agreement: Optional[float] = None,
           max_rel_diff: Optional[float] = None, device: Optional[str] = None, threads: int = 0, load=None) -> Dict:
    """Run ``model`` and its reference (``against``, or the artifact it was made from) on the
    same real clips. ``load`` turns paths into classifiers (``fts_edge.load``'s loader takes a
    checkpoint reference too; the default, the device half's, exported models only).

    Args:
        model: the artifact checked (path or Classifier).
        against: the reference (default: the artifact it was made from).
        input_uri: clips from this video or camera (default: the validation split in its bundle).
        clips: clips compared; runs, warmup: timed and untimed runs.
        min_agreement, max_rel_diff: the thresholds (None: by the artifact's precision).
        device, threads: the runtime's device and threads.
        load: how paths become classifiers.

    Returns:
        The report (``passed``, agreement, logit differences, latency, layer precisions).
    """
    from ..data.clips import check_clips
    from .runtime import as_classifier

    clf = as_classifier(model, load, device, threads)
    precision = str(clf.meta.get("precision", "fp32"))
    ref_path = against or default_reference(model, clf.meta)
    if ref_path is None:
        raise FtsError(f"{model}: no reference to verify against (its parent model is not here); pass --against "
                       "the fp32 ONNX it was made from")
    ref = as_classifier(ref_path, load, "cpu", threads)
    if ref.classes != clf.classes or ref.spec != clf.spec:
        raise FtsError(f"{model} and {ref_path} are not the same model: their classes or clip geometry differ")
    x = check_clips(clf.spec, clf.meta, input_uri, n_dataset=clips, n_video=clips, rendered=False)[:max(clips, 1)]
    got = clf.predict_logits(x)
    want = ref.predict_logits(x)
    diff = np.abs(got - want)
    agree = float((got.argmax(1) == want.argmax(1)).mean())
    rel = float(diff.max()) / max(float(np.abs(want).max()), 1e-12)
    lo_agree, hi_rel = THRESHOLDS.get(precision, THRESHOLDS["fp32"])
    lo_agree = lo_agree if min_agreement is None else min_agreement
    hi_rel = hi_rel if max_rel_diff is None else max_rel_diff
    one = x[:1] if not clf.batch else np.repeat(x[:1], clf.batch, 0)
    for _ in range(warmup):
        clf.predict_logits(one)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        clf.predict_logits(one)
        times.append(time.perf_counter() - t)
    from ..core.timing import stats

    lat = stats(times)
    rep = {"model": str(model), "backend": clf.describe(), "precision": precision, "reference": str(ref_path),
           "reference_backend": ref.describe(), "clips": int(len(x)),
           "clip_source": input_uri or "the validation split named in the metadata",
           "top1_agreement": agree, "max_abs_logit_diff": float(diff.max()), "mean_abs_logit_diff": float(diff.mean()),
           "max_rel_logit_diff": rel, "thresholds": {"min_top1_agreement": lo_agree, "max_rel_logit_diff": hi_rel},
           "latency_ms": {k: lat[f"{k}_ms"] for k in ("p50", "p90", "p99")},
           "throughput_windows_per_s": len(one) / (lat["median_ms"] / 1000)}
    if clf.meta.get("layers"):
        rep["layers"] = clf.meta["layers"]
    failures = []
    if agree < lo_agree:
        failures.append(f"top-1 agreement {agree:.1%} < {lo_agree:.0%}")
    if hi_rel is not None and rel > hi_rel:
        failures.append(f"relative logit difference {rel:.2e} > {hi_rel:.0e}")
    rep["passed"] = not failures
    rep["failures"] = failures
    clf.close()
    ref.close()
    return rep


def print_report(rep: Dict) -> None:
    print(f"verify {rep['model']} ({rep['backend']}) against {rep['reference']} ({rep['reference_backend']})")
    print(f"  clips: {rep['clips']} from {rep['clip_source']}")
    print(f"  top-1 agreement {rep['top1_agreement']:.1%} (need {rep['thresholds']['min_top1_agreement']:.0%}); "
          f"logit difference max {rep['max_abs_logit_diff']:.3g}, mean {rep['mean_abs_logit_diff']:.3g}, "
          f"relative {rep['max_rel_logit_diff']:.2e}")
    lat = rep["latency_ms"]
    print(f"  latency per window p50 {lat['p50']:.2f} ms, p90 {lat['p90']:.2f}, p99 {lat['p99']:.2f}; "
          f"throughput {rep['throughput_windows_per_s']:.1f} windows/s")
    if rep.get("layers"):
        from .engine import summary_line
        print(f"  engine layers: {summary_line(rep['layers'])}")
    print("  PASSED" if rep["passed"] else "  FAILED: " + "; ".join(rep["failures"]))
