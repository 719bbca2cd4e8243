#!/usr/bin/env python
"""Mean and spread of the paper-style table over several seeds.

Reads the ``table.json`` that `train/evaluate.py --out DIR` (or `fts-edge demo`, in
DEMO/table/) writes for each seed and prints one Markdown table: top-1 per seed, the mean and
the sample standard deviation, and the distilled student's lead over the RGB baseline and its gap
to two-stream. Saves the same as JSON with --json.

    fts-edge demo --seed 0 && fts-edge demo --seed 1 --out runs/demo-seed1 && fts-edge demo --seed 2 --out runs/demo-seed2
    python train/seed_table.py runs/demo runs/demo-seed1 runs/demo-seed2 --json runs/seeds.json
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ORDER = ("RGB", "flow (teacher)", "two-stream", "distilled student")


def _table_file(p: Path) -> Path:
    for cand in (p, p / "table.json", p / "table" / "table.json"):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"{p}: no table.json there (nor in {p / 'table'})")


def load(paths):
    runs = []
    for p in paths:
        f = _table_file(Path(p))
        rows = {r["method"]: r for r in json.loads(f.read_text())["rows"]}
        missing = [m for m in ORDER if m not in rows]
        if missing:
            raise ValueError(f"{f}: rows {missing} are missing")
        runs.append({"path": str(f), "top1": {m: float(rows[m]["top1"]) for m in ORDER},
                     "n": int(rows["RGB"].get("n", 0))})
    return runs


def summarise(runs):
    def stats(xs):
        return {"mean": statistics.fmean(xs), "sd": statistics.stdev(xs) if len(xs) > 1 else 0.0, "values": xs}

    out = {m: stats([r["top1"][m] for r in runs]) for m in ORDER}
    out["student - RGB"] = stats([r["top1"]["distilled student"] - r["top1"]["RGB"] for r in runs])
    out["student - two-stream"] = stats([r["top1"]["distilled student"] - r["top1"]["two-stream"] for r in runs])
    return out


def markdown(summary, runs) -> str:
    head = "| top-1 | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " | mean | sd |"
    lines = [head, "| --- |" + " ---: |" * (len(runs) + 2)]
    for k, s in summary.items():
        vals = " | ".join(f"{v:+.1f}" if " - " in k else f"{v:.1f}" for v in s["values"])
        lines.append(f"| {k} | {vals} | {s['mean']:+.1f} | {s['sd']:.1f} |" if " - " in k
                     else f"| {k} | {vals} | {s['mean']:.1f} | {s['sd']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="folders (or table.json files) of finished evaluations, one per seed")
    ap.add_argument("--json", help="also write the summary here")
    a = ap.parse_args(argv)
    try:
        runs = load(a.runs)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    s = summarise(runs)
    print(markdown(s, runs))
    print(f"\n{len(runs)} runs; val clips per run: {', '.join(str(r['n']) for r in runs)}")
    if a.json:
        from fts_edge.artifacts import atomic_write_text

        atomic_write_text(a.json, json.dumps({"runs": runs, "summary": s}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
