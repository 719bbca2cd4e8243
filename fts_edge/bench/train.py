"""`fts-edge bench train`: what training costs stage by stage, and how it grows to HMDB51 and UCF101.

On a generated set shaped like HMDB51's videos (51 classes, 320x240, about 90 frames: `fts-edge
data synth --classes 51 --width 320 --height 240 --frames 90`), at the paper's geometry (r3d_18
at full width, 25 x 112 x 112 from a 128 short side) and at the demo's, it times each stage a
training clip goes through, side by side in one run: decoding the clip's frames, cropping and
normalising them, TV-L1 flow (pairs a second, on the CPU and on CUDA where there is one), the
forward and backward pass of the teacher and of the distilled student (clips a second, and on
CUDA with bf16 autocast too); then the data pipeline as training runs it (clips a second with 0
and with 2 worker processes, and the share of a training step spent waiting for data), the time
to the first optimiser step and the peak memory; and extrapolates an epoch's time, the flow
store's size and the flow stage's time to HMDB51 and UCF101 at their real sizes.

Networks have seeded random weights (speed does not depend on what they learned). Saves
bench_train.json and bench_train.png.
"""
from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from ..core.timing import timeit
from ..data.clipspec import ClipSpec
from ..device.environment import environment

# The datasets the extrapolation is for: videos, training videos of split 1, mean frames a video, frame size.
DATASETS = {
    "HMDB51": {"videos": 6766, "train_videos": 3570, "classes": 51, "mean_frames": 96, "width": 320, "height": 240},
    "UCF101": {"videos": 13320, "train_videos": 9537, "classes": 101, "mean_frames": 186, "width": 320, "height": 240},
}
BATCH = 8  # clips a training step (the pipeline benchmark's --batch is one inference's)
GEOMETRIES = {
    "paper": {"clip": ClipSpec(frames=25, size=112, resize=128, stride=1), "width": 1.0},
    "demo": {"clip": ClipSpec(frames=8, size=56, resize=64, stride=2), "width": 0.125},
}


def peak_rss_mb() -> float:
    """The largest resident set of this process and of its children (the workers) so far, MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0


def _videos(folder: Path) -> List:
    from ..data.datasets import folder_index

    idx = folder_index(folder)
    return idx, idx.train + idx.test


def decode_stage(items, spec: ClipSpec, clips: int) -> Dict:
    """A clip's frames decoded (only those frames) and a whole video decoded, on the set's videos."""
    from ..data.transforms import sample_indices
    from ..data.video import declared_frames, read_frames, read_frames_at

    rng = np.random.default_rng(0)
    picks = iter([items[i % len(items)] for i in range(clips * 2)])

    def one_clip():
        item = next(picks)
        (idx,) = sample_indices(max(1, declared_frames(item.path)), spec, "random", rng)
        return read_frames_at(item.path, idx, resize_short=spec.resize)

    clip = timeit(one_clip, 0, clips)
    whole = timeit(lambda: read_frames(next(picks).path, resize_short=spec.resize, strict=False), 0, max(2, clips // 4))
    return {"clip": clip, "clips_per_s": 1000.0 / clip["median_ms"], "whole_video": whole}


def augment_stage(items, spec: ClipSpec, runs: int) -> Dict:
    """Cropping, flipping and normalising a decoded clip (what a worker does after decoding)."""
    from ..data.transforms import clip_geometry, crop_clip, sample_indices
    from ..data.video import read_frames

    frames = read_frames(items[0].path, resize_short=spec.resize, strict=False)
    rng = np.random.default_rng(0)

    def one():
        (idx,) = sample_indices(len(frames), spec, "random", rng)
        geom = clip_geometry(frames.shape[1], frames.shape[2], spec, True, rng, True)
        return crop_clip(frames[idx], geom, spec)

    t = timeit(one, 0, runs)
    return {"clip": t, "clips_per_s": 1000.0 / t["median_ms"]}


def flow_stage(items, spec: ClipSpec, pairs: int, device: str) -> Dict:
    """TV-L1 pairs a second at the store's frame size, on ``device``."""
    from ..data.video import read_frames
    from ..flow.store import tvl1_flow
    from ..flow.tvl1 import TVL1

    frames = read_frames(items[0].path, max_frames=pairs + 1, resize_short=spec.resize, strict=False)
    solver = TVL1.preset("fast").to(device).eval()
    tvl1_flow(solver, frames[:3], 1, device=device)  # warm-up (CUDA kernels, allocator)
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    flow = tvl1_flow(solver, frames, 1, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    sec = time.perf_counter() - t
    return {"pairs": len(frames), "seconds": sec, "pairs_per_s": len(frames) / sec, "frame": list(frames.shape[1:3]),
            "bytes_a_pair": int(2 * 2 * frames.shape[1] * frames.shape[2]), "flow": flow}


def step_stage(spec: ClipSpec, width: float, classes: int, batch: int, runs: int, device: str,
               precision: str = "fp32") -> Dict:
    """Forward and backward of the teacher (on flow) and of the distilled student (the teacher's
    forward for its features included), one optimiser step each: clips a second."""
    from ..nets.models import FlowTeacher, create_model
    from ..train.distill import FeatureProjection, distillation_loss

    torch.manual_seed(0)
    dev = torch.device(device)
    teacher = FlowTeacher(create_model("r3d_18", classes, in_channels=2, width=width), spec.mean, spec.std).to(dev)
    student = create_model("r3d_18", classes, width=width).to(dev)
    proj = FeatureProjection(student.num_features, teacher.num_features).to(dev)
    flow = torch.randn(batch, 2, spec.frames - 1, spec.size, spec.size, device=dev)
    rgb = torch.randn(batch, 3, spec.frames, spec.size, spec.size, device=dev)
    y = torch.randint(0, classes, (batch,), device=dev)
    ctx = (torch.autocast(dev.type, dtype=torch.bfloat16) if precision == "bf16" else torch.autocast(dev.type,
                                                                                                     enabled=False))
    opt_t = torch.optim.SGD(teacher.parameters(), lr=1e-3, momentum=0.9)
    opt_s = torch.optim.SGD(list(student.parameters()) + list(proj.parameters()), lr=1e-3, momentum=0.9)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def teacher_step():
        with ctx:
            logits = teacher.forward_head(teacher.forward_flow_features(flow))
            loss = torch.nn.functional.cross_entropy(logits.float(), y)
        opt_t.zero_grad()
        loss.backward()
        opt_t.step()
        sync()

    def student_step():
        with ctx:
            with torch.no_grad():
                f_flow = teacher.forward_flow_features(flow)
            f = student.forward_features(rgb)
            loss, _, _ = distillation_loss(student.forward_head(f).float(), y, proj(f).float(), f_flow.float(), 10.0)
        opt_s.zero_grad()
        loss.backward()
        opt_s.step()
        sync()

    out = {}
    for name, fn in (("teacher", teacher_step), ("student", student_step)):
        fn()  # warm-up
        t = timeit(fn, 0, runs)
        out[name] = {"step": t, "clips_per_s": batch * 1000.0 / t["median_ms"]}
    out.update(batch=batch, precision=precision, device=device)
    return out


def pipeline_stage(items, classes: int, spec: ClipSpec, width: float, store, workers: int, steps: int,
                   batch: int) -> Dict:
    """The data pipeline as training runs it: the student's clips (frames and stored flow) through
    a DataLoader with ``workers`` processes feeding real optimiser steps of the distilled student.
    Clips a second of the loader alone, the share of a step spent waiting for data, and the time
    from the dataset's creation to the first optimiser step."""
    from ..data.datasets import VideoItem
    from ..nets.models import FlowTeacher, create_model
    from ..train.data import ClipSet, collate
    from ..train.distill import FeatureProjection, distillation_loss
    from ..train.loop import EpochBatches

    t0 = time.perf_counter()
    ds = ClipSet([VideoItem(it.path, it.label % classes) for it in items], spec, True, True, store=store,
                 workers=workers)
    sampler = EpochBatches(len(ds), batch, 1, 0, 0)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, num_workers=workers, collate_fn=collate,
                                         persistent_workers=workers > 0, prefetch_factor=4 if workers else None)
    torch.manual_seed(0)
    teacher = FlowTeacher(create_model("r3d_18", classes, in_channels=2, width=width), spec.mean, spec.std).eval()
    student = create_model("r3d_18", classes, width=width)
    proj = FeatureProjection(student.num_features, teacher.num_features)
    opt = torch.optim.SGD(list(student.parameters()) + list(proj.parameters()), lr=1e-3, momentum=0.9)
    wait, total, first, done = 0.0, 0.0, None, 0
    epoch = 0
    while done < steps:
        sampler.set_epoch(epoch)
        it = iter(loader)
        for _ in range(len(sampler)):
            t = time.perf_counter()
            b = next(it)
            got = time.perf_counter()
            with torch.no_grad():
                f_flow = teacher.forward_flow_features(b["flow"])
            f = student.forward_features(b["rgb"])
            loss, _, _ = distillation_loss(student.forward_head(f), b["label"], proj(f), f_flow, 10.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            end = time.perf_counter()
            if first is None:
                first = end - t0
            else:  # the first batch waits for the workers to start: counted in the time to the first step
                wait += got - t
                total += end - t
            done += 1
            if done >= steps:
                break
        epoch += 1
    # the loader alone, as fast as it goes
    sampler.set_epoch(epoch)
    t = time.perf_counter()
    n = 0
    for b in loader:
        n += len(b["label"])
    loader_s = time.perf_counter() - t
    return {"workers": workers, "steps": done, "first_step_s": first, "wait_share": wait / total if total else None,
            "step_s": total / max(done - 1, 1), "loader_clips_per_s": n / loader_s if loader_s else None}


def extrapolate(res: Dict, geometry: str) -> Dict:
    """An epoch's time, the flow store's size and the flow stage's time for HMDB51 and UCF101 at
    their real sizes, from this run's figures at ``geometry``: training on a 2-core CPU is bound
    by the slower of the data pipeline and the step."""
    g = res["geometries"][geometry]
    spec = GEOMETRIES[geometry]["clip"]
    step = g["steps"]["cpu-fp32"]["student"]["clips_per_s"]
    pipe = max(p["loader_clips_per_s"] or 0 for p in g["pipeline"])
    out = {}
    for name, d in DATASETS.items():
        short = spec.resize
        w = round(d["width"] * short / d["height"])
        pairs = d["videos"] * d["mean_frames"]
        pps = {dev: f["pairs_per_s"] for dev, f in g["flow"].items()}
        out[name] = {
            "epoch_s_cpu": d["train_videos"] / min(step, pipe),
            "bound_by": "data" if pipe < step else "step",
            "flow_store_gb": pairs * 2 * 2 * short * w / 1e9,
            "flow_stage_h": {dev: pairs / v / 3600 for dev, v in pps.items()},
            "peak_rss_mb": res["peak_rss_mb"],
        }
        if "cuda-bf16" in g["steps"]:
            bf16 = g["steps"]["cuda-bf16"]["student"]["clips_per_s"]
            out[name]["epoch_s_cuda_bf16_step_only"] = d["train_videos"] / bf16
    return out


def run(out: str = "runs/bench", data: Optional[str] = None, per_class: int = 2, frames: int = 90,
        geometries=("paper", "demo"), workers=(0, 2), steps: int = 6, batch: int = BATCH, runs: int = 5,
        progress=None, say=print) -> Dict:
    """The training benchmark (the module's text says what it measures).

    Args:
        out: folder of bench_train.json, bench_train.png and the generated set (``data``'s default).
        data: a folder of videos (<class>/<video>) to measure on; default: the HMDB51-shaped set
            written there (51 classes, 320x240, ``frames`` frames, ``per_class`` videos a class).
        per_class, frames: the generated set's size.
        geometries: "paper" and/or "demo".
        workers: the DataLoader worker counts to compare.
        steps: training steps of each pipeline run.
        batch: clips a step.
        runs: timed runs of each stage.
        progress: a progress factory, or None.
        say: where progress lines go.

    Returns:
        The result (what bench_train.json holds).
    """
    from ..data.synthetic import write_motion_dataset
    from ..flow.store import build_store, open_store

    outp = Path(out)
    folder = Path(data) if data else outp / "hmdb_shaped"
    if data is None:
        say(f"writing the HMDB51-shaped set in {folder} (51 classes x {per_class}, 320x240, {frames} frames) ...")
        write_motion_dataset(folder, per_class, 0, 51, frames, 240, 320, val_fraction=0.0, progress=progress)
    index, items = _videos(folder)
    res = {"environment": environment(), "set": {"folder": str(folder), "videos": len(items),
                                                 "classes": len(index.classes)},
           "geometries": {}, "datasets": DATASETS}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for name in geometries:
        g = GEOMETRIES[name]
        spec, width = g["clip"], g["width"]
        say(f"{name}: {spec.frames} x {spec.size} x {spec.size} from a {spec.resize} short side, r3d_18 width "
            f"{width:g}")
        r: Dict = {"clip": spec.to_dict(), "network_width": width}
        r["decode"] = decode_stage(items, spec, clips=max(8, runs * 2))
        r["augment"] = augment_stage(items, spec, runs * 4)
        r["flow"] = {}
        for dev in devices:
            f = flow_stage(items, spec, pairs=24, device=dev)
            r["flow"][dev] = {k: v for k, v in f.items() if k != "flow"}
            if dev == "cuda":  # the CUDA TV-L1 against the CPU's on the same pairs
                cpu = flow_stage(items, spec, pairs=24, device="cpu")["flow"]
                r["flow"]["cuda"]["max_abs_diff_px_vs_cpu"] = float(np.abs(f["flow"] - cpu).max())
        r["steps"] = {"cpu-fp32": step_stage(spec, width, 51, batch, runs, "cpu")}
        if "cuda" in devices:
            r["steps"]["cuda-fp32"] = step_stage(spec, width, 51, batch * 4, runs, "cuda")
            r["steps"]["cuda-bf16"] = step_stage(spec, width, 51, batch * 4, runs, "cuda", "bf16")
        # the pipeline over a share of the set with its stored flow (computed here, timed above)
        share = items[: max(batch * 3, 12)]
        store = open_store(outp / "bench_flow_store", "fast", spec.resize, spec.stride)
        build_store(store, share, spec, "fast", progress=progress)
        r["flow_store_mb_a_video"] = store.size_bytes() / max(1, len(share)) / 2**20
        r["pipeline"] = [pipeline_stage(share, 51, spec, width, store, w, steps, batch) for w in workers]
        res["geometries"][name] = r
        res["peak_rss_mb"] = peak_rss_mb()
        res["geometries"][name]["extrapolation"] = extrapolate(res, name)
    res["peak_rss_mb"] = peak_rss_mb()
    save(res, outp)
    return res


def save(res: Dict, out: Path) -> Path:
    from ..core.artifacts import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    path = out / "bench_train.json"
    atomic_write_text(path, json.dumps(res, indent=2, default=float))
    try:
        _picture(res, out / "bench_train.png")
    except Exception:  # a chart is not worth failing the figures for (no matplotlib, a headless quirk)
        pass
    return path


def _picture(res: Dict, path: Path) -> None:
    from ..train.plots import pyplot, save_png

    plt = pyplot()
    names = list(res["geometries"])
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        g = res["geometries"][name]
        bars = {"decode": g["decode"]["clips_per_s"], "augment": g["augment"]["clips_per_s"]}
        for dev, st in g["steps"].items():
            bars[f"student step {dev}"] = st["student"]["clips_per_s"]
            bars[f"teacher step {dev}"] = st["teacher"]["clips_per_s"]
        for p in g["pipeline"]:
            bars[f"loader, {p['workers']} workers"] = p["loader_clips_per_s"] or 0
        ax.barh(list(bars), list(bars.values()))
        ax.set_xscale("log")
        ax.set_xlabel("clips a second")
        ax.set_title(f"{name} geometry")
    fig.tight_layout()
    save_png(fig, path)


def print_report(res: Dict) -> None:
    env = res["environment"]
    print(f"{env.get('cpu', env['machine'])}, {env.get('cpus')} CPUs; GPU: {env.get('gpu', 'none')}; "
          f"set: {res['set']['videos']} videos, {res['set']['classes']} classes")
    for name, g in res["geometries"].items():
        c = g["clip"]
        print(f"\n{name}: {c['frames']} x {c['size']} x {c['size']} (short side {c['resize']}), width "
              f"{g['network_width']:g}")
        print(f"  decode a clip's frames      {g['decode']['clip']['median_ms']:8.1f} ms   "
              f"{g['decode']['clips_per_s']:8.1f} clips/s   "
              f"(a whole video {g['decode']['whole_video']['median_ms']:.0f} ms)")
        print(f"  crop and normalise a clip   {g['augment']['clip']['median_ms']:8.2f} ms   "
              f"{g['augment']['clips_per_s']:8.1f} clips/s")
        for dev, f in g["flow"].items():
            extra = f", max |cuda - cpu| {f['max_abs_diff_px_vs_cpu']:.3f} px" if "max_abs_diff_px_vs_cpu" in f else ""
            print(f"  TV-L1 on {dev:4s} {f['frame'][0]}x{f['frame'][1]}     {f['pairs_per_s']:8.1f} pairs/s{extra}")
        for key, st in g["steps"].items():
            print(f"  step {key:9s} batch {st['batch']:2d}   teacher {st['teacher']['clips_per_s']:7.1f} clips/s, "
                  f"student {st['student']['clips_per_s']:7.1f} clips/s")
        for p in g["pipeline"]:
            print(f"  pipeline, {p['workers']} workers      loader {p['loader_clips_per_s']:7.1f} clips/s; waiting for "
                  f"data {100 * (p['wait_share'] or 0):4.1f}% of a step; first step after {p['first_step_s']:.1f} s")
        print(f"  flow store {g['flow_store_mb_a_video']:.1f} MB a video of the set")
        for ds, e in g["extrapolation"].items():
            hours = ", ".join(f"{dev} {h:.1f} h" for dev, h in e["flow_stage_h"].items())
            print(f"  {ds}: an epoch {e['epoch_s_cpu'] / 60:.0f} min on this CPU (bound by the {e['bound_by']}); flow "
                  f"store {e['flow_store_gb']:.0f} GB, computed in {hours}; peak RSS {e['peak_rss_mb']:.0f} MB")
    print(f"\npeak RSS {res['peak_rss_mb']:.0f} MB (this process and its workers)")


def save_rss(res: Dict, out) -> Path:
    """bench_train_rss.json: the epoch memory figures, with what grew between the smallest and the
    largest set."""
    from ..core.artifacts import atomic_write_text

    rows = sorted(res.values(), key=lambda r: r["videos"])
    if len(rows) > 1:
        res = {"sets": res, "growth_mb": {role: rows[-1][role]["peak_rss_mb"] - rows[0][role]["peak_rss_mb"]
                                          for role in ("teacher", "student")},
               "videos": [rows[0]["videos"], rows[-1]["videos"]]}
        print(f"from {rows[0]['videos']} to {rows[-1]['videos']} videos: teacher "
              f"{res['growth_mb']['teacher']:+.0f} MB, student {res['growth_mb']['student']:+.0f} MB")
    else:
        res = {"sets": res}
    res["environment"] = environment()
    Path(out).mkdir(parents=True, exist_ok=True)
    path = Path(out) / "bench_train_rss.json"
    atomic_write_text(path, json.dumps(res, indent=2, default=float))
    return path


def epoch_rss(counts, out, frames: int = 32, classes: int = 10, say=print) -> Dict:
    """Peak resident memory of one teacher epoch and one student epoch (the training scripts, each
    in a process of its own, the flow store built first) on generated sets of ``counts`` 320x240
    videos of ``frames`` frames, 8 x 112 x 112 clips from a 128 short side on a 1/8-width r3d_18:
    what grows with the dataset, if anything."""
    import subprocess
    import sys

    from ..data.synthetic import write_motion_dataset

    res = {}
    script = Path(__file__).resolve().parents[2] / "train"
    geo = ["--frames", "8", "--size", "112", "--resize", "128", "--width", "0.125", "--epochs", "1",
           "--batch-size", "8", "--warmup-epochs", "0"]
    for n in counts:
        folder = Path(out) / f"rss_{n}"
        per_class = max(1, n // classes)
        write_motion_dataset(folder / "videos", per_class, 0, classes, frames, 240, 320, val_fraction=0.25)
        data = ["--dataset", "folder", "--root", str(folder / "videos"), "--flow-cache", str(folder / "flow")]
        row = {"videos": per_class * classes}
        for role, extra in (("teacher", []), ("student", ["--teacher", str(folder / "teacher" / "last.pt")])):
            name = "train_teacher.py" if role == "teacher" else "train_student.py"
            cmd = [sys.executable, "-c", _RSS_CHILD, str(script / name), *geo, *data, *extra, "--out",
                   str(folder / role)]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"{role} on {n} videos: {r.stderr[-500:]}")
            row[role] = json.loads(r.stdout.strip().splitlines()[-1])
            say(f"{row['videos']} videos, {role}: peak RSS {row[role]['peak_rss_mb']:.0f} MB")
        res[str(n)] = row
    return res


# Runs a training script in this process and prints its peak resident memory (the flow store is
# built in the same process: the epoch's figure includes it).
_RSS_CHILD = """
import json, resource, runpy, sys
script = sys.argv[1]
sys.argv = sys.argv[1:]
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as e:
    if e.code:
        raise
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
