"""Timing of callables for benchmarks and checks: round-robin runs, robust statistics.

Torch-free: the device half times models with it."""
from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional

import numpy as np


def round_robin(fns: Dict[str, Callable], warmup: int, runs: int, slow_runs: Optional[Dict[str, int]] = None) -> Dict:
    """Time several callables one run each per round (so a slow spell hits them alike)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in fns}
    for r in range(runs):
        for k, fn in fns.items():
            if slow_runs and k in slow_runs and r >= slow_runs[k]:
                continue
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: stats(v) for k, v in times.items()}


def stats(times_s: List[float]) -> Dict:
    """Summary of timings in seconds, reported in milliseconds."""
    a = np.asarray(times_s) * 1000
    med = float(np.median(a))
    return {
        "median_ms": med,
        "p50_ms": med,
        "p90_ms": float(np.percentile(a, 90)),
        "p99_ms": float(np.percentile(a, 99)),
        "mean_ms": float(a.mean()),
        "min_ms": float(a.min()),
        "max_ms": float(a.max()),
        "runs": int(len(a)),
        "spread": float((np.percentile(a, 75) - np.percentile(a, 25)) / med) if med else 0.0,
    }


def per_call(timing: Dict, n: int) -> Dict:
    """``stats`` of a callable that does n things a call, as the figures of one of them."""
    return {k: (v / n if k.endswith("_ms") else v) for k, v in timing.items()}


def timeit(fn: Callable, warmup: int, runs: int, sync: Optional[Callable] = None) -> Dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t)
    return stats(times)
