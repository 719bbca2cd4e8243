"""Every figure fts-edge draws, and the one place a figure becomes a PNG.

Figures go to disk atomically (a crash never leaves half a picture) and are drawn with
matplotlib's Agg backend, so they work on a machine without a display. matplotlib comes with the
``train`` extra; the torch-free device half draws no figures.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from ..core.artifacts import atomic_write_bytes


def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_png(fig, path, dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` as a PNG, atomically, and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    pyplot().close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def curves_png(rows: Sequence[Dict], title: str, path) -> None:
    """Training curves: the objective and validation cross-entropy; train and validation top-1 with
    chance marked (``rows``: one metrics.jsonl row per epoch)."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    ep = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    fig.suptitle(title, fontsize=11)
    ax[0].plot(ep, [r["train_loss"] for r in rows], marker=".", label="train loss (whole objective)")
    if all("val_loss" in r for r in rows):
        ax[0].plot(ep, [r["val_loss"] for r in rows], marker=".", label="val cross-entropy")
    ax[0].set_ylabel("loss")
    ax[1].plot(ep, [r["train_top1"] for r in rows], marker=".", label="train top-1")
    ax[1].plot(ep, [r["val_top1"] for r in rows], marker=".", label="val top-1")
    if rows[-1].get("chance_top1"):
        ax[1].axhline(rows[-1]["chance_top1"], color="grey", linestyle="--", linewidth=1, label="chance")
    ax[1].set_ylabel("top-1 (%)")
    ax[1].set_ylim(0, 100)
    for a in ax:
        a.set_xlabel("epoch")
        a.legend(fontsize=8)
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    save_png(fig, path, dpi=90)


def confusion_png(cm: np.ndarray, classes: List[str], title: str, path) -> None:
    """A confusion matrix with its counts written in the cells (rows: true class)."""
    plt = pyplot()
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * n, 0.8 + 0.45 * n))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(n), classes, fontsize=7)
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_png(fig, path, dpi=90)


STAGE_COLOURS = {"decode": "#9e9e9e", "preprocess": "#64b5f6", "inference": "#1565c0", "post-process": "#ffb300"}


def bench_png(res: Dict, path) -> bool:
    """The benchmark's frame-to-label time of each timed path, one horizontal bar per path split
    into its stages, the total written at the bar's end, the input and the machine in the title.
    Paths are sorted fastest first. Returns False when no path was timed (nothing drawn)."""
    rows = sorted((r for r in res["paths"] if "inference" in r), key=lambda r: r["end_to_end_ms"])
    if not rows:
        return False
    plt = pyplot()
    ls = res["live_stages"]
    stages = {"decode": ls.get("decode_per_frame", {"median_ms": 0.0})["median_ms"],
              "preprocess": ls["preprocess_per_frame"]["median_ms"], "post-process": ls["postprocess"]["median_ms"]}
    labels = [f"{r['model']}  {r['backend']}  {r['precision']}" for r in rows]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.42 * len(rows)))
    y = np.arange(len(rows))
    left = np.zeros(len(rows))
    for name in ("decode", "preprocess", "inference", "post-process"):
        vals = np.array([r["inference"]["median_ms"] if name == "inference" else stages[name] for r in rows])
        ax.barh(y, vals, left=left, color=STAGE_COLOURS[name], label=name, height=0.65)
        left += vals
    top = float(left.max())
    for yi, total, r in zip(y, left, rows):
        ax.text(total + top * 0.01, yi, f"{total:.1f} ms  ({1000.0 / total:.1f}/s)", va="center", fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.25)
    ax.set_xlabel("median ms from the newest frame to its label (one clip classified)")
    env = res.get("environment", {})
    shape = "x".join(str(d) for d in res.get("input", []))
    ax.set_title(f"input {shape} on {env.get('cpu', env.get('machine', 'this machine'))}"
                 + (f", GPU {env['gpu']}" if env.get("gpu") else ""), fontsize=9)
    ax.legend(fontsize=8, loc="upper right", ncol=2)  # fastest first: the top right is free
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)
    return True
