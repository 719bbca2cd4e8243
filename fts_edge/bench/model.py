"""`fts-edge bench --model PATH`: time the user's own model or engine on this device, per stage of
the live path (decode, preprocess, inference, post-processing), with warm-up, p50/p90/p99 and
throughput, as trtexec reports an engine. Imports no torch: it runs on the device half.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..core.timing import stats, timeit
from ..device.environment import environment


def postprocess_stage(classes, warmup: int, runs: int, logits: Optional[np.ndarray] = None) -> Dict:
    """Timing of what follows inference for one window: softmax, smoothing, events, top-k.
    ``classes`` is a count or the class names."""
    from ..device.runtime import softmax
    from ..live.stream import LIVE, EventDetector, Smoother, topk

    names = [str(i) for i in range(classes)] if isinstance(classes, int) else list(classes)
    sm, ev = Smoother(LIVE.smooth), EventDetector(names)
    if logits is None:
        logits = np.random.default_rng(0).standard_normal((1, len(names))).astype(np.float32)

    def post():
        s = sm(softmax(logits)[0])
        ev(s, 0, 0.0)
        return topk(s, names, LIVE.topk)

    return timeit(post, warmup, runs)


def frames_of(input_uri: Optional[str], n: int) -> (List[np.ndarray], Optional[Dict]):
    """``n`` RGB frames and the decode timing per frame: from a video file, or (none given) drawn
    motion frames, for which there is no decode stage."""
    if input_uri and Path(input_uri).is_file():
        import cv2

        cap = cv2.VideoCapture(str(input_uri))
        times, frames = [], []
        try:
            while len(frames) < n:
                t = time.perf_counter()
                ok, f = cap.read()
                if not ok:
                    if not frames:
                        from ..core.errors import VideoError
                        raise VideoError(f"{input_uri}: no frame decodes")
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    continue
                f = cv2.cvtColor(f, cv2.COLOR_BGR2RGB)
                times.append(time.perf_counter() - t)
                frames.append(f)
        finally:
            cap.release()
        return frames, stats(times)
    from ..data.synthetic import render_clip

    return list(render_clip(0, 0, 0, max(n, 2), 240, 320)), None


def bench_model(model: str, input_uri: Optional[str] = None, warmup: int = 3, runs: int = 30, batch: int = 1,
                device: Optional[str] = None, threads: int = 0, progress=None, load=None) -> Dict:
    """Time one model end to end. Returns the report (also what ``save`` writes).

    Args:
        model: the artifact (path) or a Classifier.
        input_uri: footage to decode and preprocess (a file, a camera); None: rendered motion.
        warmup, runs: untimed and timed runs of each stage.
        batch: clips per inference call.
        device, threads: the runtime's device (cpu, cuda) and threads.
        progress: a progress factory, or None.
        load: how a path becomes a Classifier (``fts_edge.api.load_classifier`` takes checkpoints).

    Returns:
        The report: per stage (decode, preprocess, inference, post-processing) p50/p90/p99 ms,
        throughput, the model and the environment.
    """
    from ..data.transforms import preprocess_frame
    from ..device.runtime import as_classifier

    clf = as_classifier(model, load, device, threads)
    spec = clf.spec
    frames, decode = frames_of(input_uri, max(spec.frames, 60))
    i = [0]

    def prep():
        i[0] += 1
        return preprocess_frame(frames[i[0] % len(frames)], spec)

    preprocess = timeit(prep, warmup, max(runs, 50))
    window = np.stack([preprocess_frame(f, spec) for f in frames[:spec.frames]], 1)
    x = np.repeat(window[None], batch, 0).astype(np.float32)
    for _ in range(warmup):
        clf.predict_logits(x)
    times = []
    rounds = progress(range(runs), desc="timing", unit="run") if progress else range(runs)
    for _ in rounds:
        t = time.perf_counter()
        clf.predict_logits(x)
        times.append(time.perf_counter() - t)
    inference = stats(times)
    post_t = postprocess_stage(clf.classes, warmup, max(runs, 50), logits=clf.predict_logits(x)[:1])
    per_frame = (decode["median_ms"] if decode else 0.0) + preprocess["median_ms"]
    rep = {"model": str(model), "backend": clf.describe(), "precision": clf.meta.get("precision", "fp32"),
           "input": [batch, *spec.input_shape], "source": input_uri or "drawn motion frames (no decode stage)",
           "warmup": warmup, "runs": runs,
           "stages": {"decode_per_frame": decode, "preprocess_per_frame": preprocess, "inference_per_window": inference,
                      "postprocess_per_window": post_t},
           "throughput": {"windows_per_s": batch / (inference["median_ms"] / 1000),
                          "clip_frames_per_s": batch * spec.frames / (inference["median_ms"] / 1000)},
           # frame-to-label: the newest frame decoded and preprocessed, the window classified, the scores post-processed
           "frame_to_label_ms": per_frame + inference["median_ms"] + post_t["median_ms"],
           "environment": environment()}
    if clf.meta.get("layers"):
        rep["layers"] = clf.meta["layers"]
    clf.close()
    return rep


def save(rep: Dict, out) -> Path:
    from ..core.artifacts import atomic_write_text

    path = Path(out) / "bench_model.json"
    atomic_write_text(path, json.dumps(rep, indent=2, default=str))
    return path


def print_report(rep: Dict) -> None:
    env = rep["environment"]
    print(f"{rep['backend']} on {env.get('cpu') or env.get('machine')}"
          + (f", Jetson {env['jetson'].get('model')} ({env['jetson'].get('nvpmodel', 'power mode unknown')})"
             if env.get("jetson") else ""))
    print(f"input {rep['input']}; {rep['runs']} timed runs after {rep['warmup']} warm-up; source: {rep['source']}")
    print(f"  {'stage':24s} {'p50 ms':>9s} {'p90':>9s} {'p99':>9s}")
    for k, s in rep["stages"].items():
        if s:
            print(f"  {k:24s} {s['p50_ms']:9.2f} {s['p90_ms']:9.2f} {s['p99_ms']:9.2f}")
    t = rep["throughput"]
    print(f"throughput: {t['windows_per_s']:.2f} windows/s ({t['clip_frames_per_s']:.0f} clip frames/s); "
          f"frame-to-label {rep['frame_to_label_ms']:.1f} ms")
    if rep.get("layers"):
        from ..device.engine import summary_line
        print(f"engine layers: {summary_line(rep['layers'])}")
