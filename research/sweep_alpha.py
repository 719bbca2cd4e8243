#!/usr/bin/env python
"""Sweep the distillation weight alpha on a development copy of the motion dataset.

The default --alpha of train/train_student.py is meant to come from it. It renders its own motion
dataset with another seed (default 99), trains a flow teacher on it, then one student per alpha
with the training scripts' own code (alpha 0 is the RGB baseline), and scores each on that
dataset's val split. No split that a reported table uses is seen, so the choice is not tuned on
a test split. The demo's settings (clip geometry, width, epochs, AdamW) are used throughout.

    python research/sweep_alpha.py --out runs/sweep-alpha                      # 0, 1, 10, 50, 200
    python research/sweep_alpha.py --out runs/sweep-alpha --alphas 0,50 --epochs 30

Beside top-1, each student's fit to the teacher's features on 100 val clips: R^2 (the share of
the teacher's feature variance across clips that the student reproduces), the ratio of the two
variances, and the mean per-dimension correlation (the measure for --mimic correlation, whose
students' feature scale is free). A student at chance with R^2 and a ratio near 0 has collapsed
onto the teacher's mean feature, which the MSE mimic rewards before the student can see motion.

Interrupted, it resumes: finished students are kept, the unfinished one continues from its last
epoch. Prints and saves a Markdown and JSON table (OUT/sweep.md, OUT/sweep.json; with --mimic correlation,
OUT/sweep-correlation.*, beside the MSE students of the same data and teacher). A later run with
other alphas adds its rows to the same table; a re-run alpha replaces its row.
"""
import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path


def parse_alphas(text: str):
    try:
        alphas = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--alphas takes numbers separated by commas, got {text!r}") from None
    if not alphas or any(a < 0 for a in alphas):
        raise ValueError(f"--alphas needs at least one value, none negative, got {text!r}")
    return alphas


def markdown(rows) -> str:
    lines = ["| alpha | val top-1 (last) | val top-1 (best) | train top-1 | mimic MSE | val R^2 | val variance ratio "
             "| val correlation | minutes |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        fit = r.get("mimic_fit")
        r2, vr, co = (f"{fit['r2']:+.2f}", f"{fit['var_ratio']:.2f}", f"{fit['corr']:+.2f}") if fit else ("-", "-", "-")
        lines.append(f"| {r['alpha']:g} | {r['last_top1']:.1f} | {r['best_top1']:.1f} | {r['train_top1']:.1f} | "
                     f"{r['train_mse']:.4f} | {r2} | {vr} | {co} | {r['seconds'] / 60:.1f} |")
    return "\n".join(lines)


def merged_rows(saved: Path, rows):
    """This run's rows plus the rows of other alphas that an earlier run saved in the same table, so
    that extending a sweep (--alphas 30,100 after 1,10) adds to its table instead of replacing it."""
    try:
        earlier = json.loads(saved.read_text())["rows"] if saved.exists() else []
    except (ValueError, KeyError, TypeError, OSError):
        earlier = []  # an unreadable old table is replaced, as before
    done = {r["alpha"] for r in rows}
    kept = [r for r in earlier if isinstance(r, dict) and r.get("alpha") not in done]
    return sorted(rows + kept, key=lambda r: r["alpha"]), sorted(r["alpha"] for r in kept)


def main(argv=None, cfg=None) -> int:
    from fts_edge.train.distill import MIMICS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/sweep-alpha", help="folder for the data, the teacher and the students")
    ap.add_argument("--alphas", default="0,1,10,50,200", help="comma-separated values (default 0,1,10,50,200)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs of each student (default: the demo's)")
    ap.add_argument("--data-seed", type=int, default=99,
                    help="seed of the development dataset and of training (default 99; the demo's tables use 0-4)")
    ap.add_argument("--mimic", choices=MIMICS, default="mse",
                    help="the students' mimic loss (default mse, the paper's; see train_student.py --mimic)")
    a = ap.parse_args(argv)

    from fts_edge.core.artifacts import atomic_write_text
    from fts_edge.core.errors import exit_status
    from fts_edge.core.progress import progress
    from fts_edge.demo import Demo, DemoConfig, saved_config
    from fts_edge.train.evaluate import student_mimic_fit
    from fts_edge.train.loop import fit, read_jsonl

    try:
        alphas = parse_alphas(a.alphas)
        base = cfg or DemoConfig()
        if a.epochs is not None and a.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {a.epochs}")
        dcfg = replace(base, seed=a.data_seed, epochs=a.epochs or base.epochs)
        out = Path(a.out)
        # each student sets its own alpha and mimic, so the demo-level ones play no part here: keep a
        # folder's saved values, so that a sweep made before those defaults changed still resumes
        saved = saved_config(json.loads((out / "state.json").read_text())) if (out / "state.json").exists() else None
        if saved:
            dcfg = replace(dcfg, alpha=saved.get("alpha", dcfg.alpha), mimic=saved.get("mimic", dcfg.mimic))
        demo = Demo(str(out), dcfg, progress=progress)
        n_val = demo.stage(1, "data", demo.write_data)["val"]
        demo.stage(2, "teacher", lambda: fit(demo.train_cfg("teacher"), progress=progress))
        rows, teacher_features = [], {}
        for alpha in alphas:
            name = f"alpha-{alpha:g}" + ("" if a.mimic == "mse" or alpha == 0 else f"-{a.mimic}")
            role = "student" if alpha > 0 else "rgb"
            tc = demo.train_cfg(role, alpha=alpha, **({"teacher": str(out / "teacher" / "last.pt"), "mimic": a.mimic}
                                                      if alpha > 0 else {}))
            tc = replace(tc, out=str(out / name))
            print(f"alpha {alpha:g}: {role}{' (' + a.mimic + ' mimic)' if alpha > 0 else ''} for {tc.epochs} epochs "
                  f"in {tc.out}", flush=True)
            fit(tc, progress=progress)
            hist = read_jsonl(out / name / "metrics.jsonl")
            last = hist[-1]
            rows.append({"alpha": alpha, "mimic": a.mimic if alpha > 0 else None, "last_top1": last["val_top1"],
                         "best_top1": max(h["val_top1"] for h in hist),
                         "train_top1": last["train_top1"], "train_mse": last["train_mse"],
                         "epochs": last["epoch"], "seconds": round(sum(h.get("train_seconds", 0) for h in hist), 1),
                         "curve": [round(h["val_top1"], 1) for h in hist],
                         "mimic_fit": student_mimic_fit(str(out / name / "last.pt"), str(out / "teacher" / "last.pt"),
                                                        max_clips=100, cache=teacher_features) if alpha > 0 else None})
    except (Exception, KeyboardInterrupt) as e:
        return exit_status(e, "interrupted; finished students and epochs are kept: run the same command again to "
                              "resume")
    stem = "sweep" if a.mimic == "mse" else f"sweep-{a.mimic}"
    rows, kept = merged_rows(out / f"{stem}.json", rows)
    table = markdown(rows)
    print("\n" + table + f"\n\nval clips of the development dataset (seed {a.data_seed}): {n_val}"
          + (f"\nkept from earlier runs in this folder: alpha {', '.join(f'{x:g}' for x in kept)}" if kept else ""))
    atomic_write_text(out / f"{stem}.md", table + "\n")
    atomic_write_text(out / f"{stem}.json", json.dumps({"data_seed": a.data_seed, "val_clips": n_val, "mimic": a.mimic,
                                                      "config": dcfg.__dict__, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
