#!/usr/bin/env python
"""Mean and spread of the paper-style table over several seeds.

Reads the ``table.json`` that `train/evaluate.py --out DIR` (or `fts-edge demo`, in
DEMO/table/) writes for each seed and prints one Markdown table: top-1 per seed, the mean and
the sample standard deviation, and the distilled student's lead over the RGB baseline and its gap
to two-stream; then which seeds meet the paper's claim (the student at least --lead points above
RGB, no more than --gap points below two-stream). Saves the same as JSON with --json. Runs of
`fts-edge demo` whose settings differ in more than the seed are refused unless --mixed.

    fts-edge demo --seed 0 && fts-edge demo --seed 1 --out runs/demo-seed1 && \
        fts-edge demo --seed 2 --out runs/demo-seed2
    python research/seed_table.py runs/demo runs/demo-seed1 runs/demo-seed2 --json runs/seeds.json
"""
import argparse
import json
import math
import statistics
import sys
from pathlib import Path

ORDER = ("RGB", "flow (teacher)", "two-stream", "distilled student")


def _table_file(p: Path) -> Path:
    for cand in (p, p / "table.json", p / "table" / "table.json"):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"{p}: no table.json there (nor in {p / 'table'})")


def _demo_config(f: Path):
    """The settings of the `fts-edge demo` folder a table.json belongs to, if it is one."""
    for d in (f.parent, f.parent.parent):
        st = d / "state.json"
        if st.is_file():
            try:
                from fts_edge.demo import saved_config
                return saved_config(json.loads(st.read_text()))
            except (OSError, json.JSONDecodeError):
                return None
    return None


def load(paths, mixed: bool = False):
    runs = []
    for p in paths:
        f = _table_file(Path(p))
        table = json.loads(f.read_text())
        rows = {r["method"]: r for r in table["rows"]}
        missing = [m for m in ORDER if m not in rows]
        if missing:
            raise ValueError(f"{f}: rows {missing} are missing")
        cfg = _demo_config(f)
        runs.append({"path": str(f), "top1": {m: float(rows[m]["top1"]) for m in ORDER},
                     "n": int(rows["RGB"].get("n", 0)), "seed": cfg.get("seed") if cfg else None,
                     "config": cfg,
                     "paired_gap": ((table.get("diagnostics") or {}).get("student_minus") or {}).get("two-stream")})
    cfgs = [r["config"] for r in runs if r["config"]]
    differ = sorted({k for c in cfgs for k in c if k != "seed" and len({json.dumps(x.get(k)) for x in cfgs}) > 1})
    if differ and not mixed:
        raise ValueError(
            "the runs differ in more than the seed ("
            + ", ".join(f"{k}: {', '.join(str(c.get(k)) for c in cfgs)}" for k in differ)
            + "); pass --mixed to average them anyway"
        )
    return runs


def criteria(runs, lead: float, gap: float):
    """Which runs meet the two checks of the paper's claim: the student at least ``lead`` points
    above RGB, and no more than ``gap`` points below two-stream."""
    def which(ok):
        names = [_name(r, i) for i, r in enumerate(runs) if ok(r["top1"])]
        return f"{', '.join(names) or 'none'} ({len(names)} of {len(runs)})"

    return [f"student at least {lead:g} points above RGB: "
            + which(lambda t: t["distilled student"] - t["RGB"] >= lead),
            f"student no more than {gap:g} points below two-stream: "
            + which(lambda t: t["distilled student"] - t["two-stream"] >= -gap)]


def _name(run, i):
    return f"seed {run['seed']}" if run.get("seed") is not None else f"run {i + 1}"


def summarise(runs):
    def stats(xs):
        return {"mean": statistics.fmean(xs), "sd": statistics.stdev(xs) if len(xs) > 1 else 0.0, "values": xs}

    out = {m: stats([r["top1"][m] for r in runs]) for m in ORDER}
    out["student - RGB"] = stats([r["top1"]["distilled student"] - r["top1"]["RGB"] for r in runs])
    out["student - two-stream"] = stats([r["top1"]["distilled student"] - r["top1"]["two-stream"] for r in runs])
    return out


def pooled_gap(runs):
    """The student's gap to two-stream averaged over the runs, with the 95% interval of that mean
    from each run's paired interval (evaluate.py's, clip by clip): the noise of the clips alone,
    the runs taken as they are. None where a table has no paired interval (an older evaluate.py)."""
    gaps = [r.get("paired_gap") for r in runs]
    if not gaps or any(g is None for g in gaps):
        return None
    from fts_edge.train.evaluate import Z95 as z  # the quantile evaluate.py's intervals use

    se = [(g["ci95"][1] - g["ci95"][0]) / (2 * z) for g in gaps]
    mean = statistics.fmean(g["points"] for g in gaps)
    half = z * math.sqrt(sum(x * x for x in se)) / len(gaps)
    return {"points": round(mean, 1), "ci95": [round(mean - half, 1), round(mean + half, 1)],
            "clips": sum(g["n"] for g in gaps)}


def markdown(summary, runs) -> str:
    head = "| top-1 | " + " | ".join(_name(r, i) for i, r in enumerate(runs)) + " | mean | sd |"
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
    ap.add_argument("--lead", type=float, default=10.0, help="the student's lead over RGB to check for (default 10)")
    ap.add_argument("--gap", type=float, default=2.0, help="the largest gap below two-stream to accept (default 2)")
    ap.add_argument("--mixed", action="store_true", help="average runs whose settings differ in more than the seed")
    a = ap.parse_args(argv)
    try:
        runs = load(a.runs, a.mixed)
    except (OSError, ValueError, KeyError) as e:
        from fts_edge.core.errors import exit_status
        return exit_status(e)
    s = summarise(runs)
    print(markdown(s, runs))
    print(f"\n{len(runs)} runs; val clips per run: {', '.join(str(r['n']) for r in runs)}")
    checks = criteria(runs, a.lead, a.gap)
    pooled = pooled_gap(runs)
    if pooled:
        lo, hi = pooled["ci95"]
        checks.append(f"student - two-stream over the {pooled['clips']} clips of the runs: {pooled['points']:+.1f} "
                      f"(95% interval {lo:+.1f} to {hi:+.1f}, paired clip by clip)")
    print("\n".join(checks))
    if a.json:
        from fts_edge.core.artifacts import atomic_write_text

        atomic_write_text(a.json, json.dumps({"runs": runs, "summary": s, "checks": checks}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
