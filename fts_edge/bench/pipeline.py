"""The benchmark users choose a model, a precision and a device by: per-stage timings of the live
path, every backend and precision this machine has, and the floor (the model's MACs against the
machine's measured peak); with the paper's speed claim from two_stream.py beside it. Prints a
table; saves JSON (with the environment) and a PNG chart (plots.bench_png).
"""
from __future__ import annotations

import json
import logging
import resource
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from ..core.timing import stats, timeit
from ..data.clipspec import ClipSpec
from ..device.environment import environment
from .model import postprocess_stage
from .two_stream import two_stream_vs_student

log = logging.getLogger(__name__)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measured_peak(device: str = "cpu") -> Dict:
    """The machine's peak in the precisions the model paths use: the fastest large matrix product
    this machine's libraries offer (torch, and ONNX Runtime with constant, pre-packed weights, as
    a model's are). A path above 100% runs kernels faster than any product measured here."""
    res = {}
    n = 2048
    if device == "cpu":
        a = torch.randn(n, n)
        t = timeit(lambda: torch.mm(a, a), 1, 5)
        candidates = {"torch.mm": n ** 3 / (t["median_ms"] / 1000) / 1e9,
                      "onnxruntime MatMul": _onnxruntime_product_peak(n, "fp32")}
        res["fp32_gmacs_per_s"] = max(v for v in candidates.values() if v)
        res["fp32_sources"] = candidates
        res["int8_gmacs_per_s"] = _onnxruntime_product_peak(n, "int8")
    else:
        for dt, name in ((torch.float32, "fp32"), (torch.float16, "fp16")):
            a = torch.randn(8192, 8192, device="cuda", dtype=dt)
            t = timeit(lambda: torch.mm(a, a), 2, 10, torch.cuda.synchronize)
            res[f"{name}_gmacs_per_s"] = 8192 ** 3 / (t["median_ms"] / 1000) / 1e9
    return res


def _onnxruntime_product_peak(n: int, precision: str) -> Optional[float]:
    """A (n x n) x (n x n) product in ONNX Runtime on the CPU with B a constant (pre-packed):
    MatMul in fp32, MatMulInteger (uint8 x int8) in int8."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        rng = np.random.default_rng(0)
        if precision == "int8":
            xa = rng.integers(0, 255, (n, n), dtype=np.uint8)
            b = numpy_helper.from_array(rng.integers(-127, 127, (n, n), dtype=np.int8), "b")
            node, ta, ty = "MatMulInteger", TensorProto.UINT8, TensorProto.INT32
        else:
            xa = rng.standard_normal((n, n)).astype(np.float32)
            b = numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32), "b")
            node, ta, ty = "MatMul", TensorProto.FLOAT, TensorProto.FLOAT
        g = helper.make_graph([helper.make_node(node, ["a", "b"], ["y"])], "mm",
                              [helper.make_tensor_value_info("a", ta, [n, n])],
                              [helper.make_tensor_value_info("y", ty, [n, n])], initializer=[b])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        t = timeit(lambda: s.run(None, {"a": xa}), 1, 5)
        return n ** 3 / (t["median_ms"] / 1000) / 1e9
    except Exception as e:  # absent or unsupported: the fraction is left out, and the JSON says so
        log.warning("%s peak not measured: %s", precision, e)
        return None


def live_stages(video: Optional[str], spec: ClipSpec, warmup: int, runs: int) -> Dict:
    """Decode and preprocessing of one frame of real footage (what happens per frame)."""
    import cv2

    from ..data.transforms import preprocess_frame

    src = str(video) if video and Path(video).exists() else None
    if src is None:
        from ..data.synthetic import render_clip
        frames = list(render_clip(0, 0, 0, 30, 240, 320))
        decode = None
    else:
        cap = cv2.VideoCapture(src)

        def read():
            ok, f = cap.read()
            if not ok:
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, f = cap.read()
            return cv2.cvtColor(f, cv2.COLOR_BGR2RGB)

        decode = timeit(read, warmup, runs * 5)
        frames = [read() for _ in range(10)]
        cap.release()
    i = [0]

    def prep():
        i[0] += 1
        return preprocess_frame(frames[i[0] % len(frames)], spec)

    out = {"preprocess_per_frame": timeit(prep, warmup, runs * 5), "source": src or "rendered motion"}
    if decode:
        out["decode_per_frame"] = decode
    return out


def build_paths(widths: List[float], spec: ClipSpec, classes: int, workdir: Path, backends: List[str],
                precisions: List[str], batch: int, calib_video: Optional[str]) -> List[Dict]:
    """Every (model, backend, precision) this machine can run, each a callable on one input;
    absent ones come back with the reason they were skipped.

    Args:
        widths: r3d_18 width multipliers to build.
        spec: the clip geometry.
        classes: classifier outputs.
        workdir: where the exported models go.
        backends, precisions: what to try (torch, onnxruntime, tensorrt; fp32, fp16, int8).
        batch: clips per call.
        calib_video: footage to calibrate INT8 on (None: rendered clips).

    Returns:
        One dict per path: model, backend, precision, device and ``fn`` (or ``skipped``).
    """
    from ..data.clips import check_clips
    from ..device.quantize import quantize_int8
    from ..export.onnx import export_onnx, ort_session
    from ..nets.checkpoint import make_checkpoint, save_checkpoint
    from ..nets.models import count_macs, create_model

    paths = []
    clips = check_clips(spec, None, calib_video, n_video=8)
    x = np.ascontiguousarray(np.repeat(clips[:1], batch, 0))
    for width in widths:
        name = f"r3d_18 w{width:g}"
        torch.manual_seed(0)
        model = create_model("r3d_18", classes, width=width).eval()
        macs = count_macs(model, (batch, *spec.input_shape))
        common = {"model": name, "width": width, "gmacs": macs / 1e9}
        if "torch" in backends:
            xt = torch.from_numpy(x)
            if "fp32" in precisions:
                paths.append({**common, "backend": "torch-cpu", "precision": "fp32",
                              "fn": _torch_fn(model, xt), "device": "cpu"})
            if torch.cuda.is_available():
                for prec in [p for p in precisions if p in ("fp32", "fp16")]:
                    m = create_model("r3d_18", classes, width=width).eval().cuda()
                    xc = xt.cuda()
                    if prec == "fp16":
                        m, xc = m.half(), xc.half()
                    paths.append({**common, "backend": "torch-cuda", "precision": prec, "device": "cuda",
                                  "fn": _torch_fn(m, xc), "sync": torch.cuda.synchronize})
                    paths.append({**common, "backend": "torch-cuda-graph", "precision": prec, "device": "cuda",
                                  **_cuda_graph(m, xc)})
            else:
                paths.append({**common, "backend": "torch-cuda", "skipped": "no CUDA GPU on this machine"})
        if "onnxruntime" in backends:
            ckp = save_checkpoint(workdir / f"w{width:g}.pt", make_checkpoint(
                model, "rgb", spec, [str(i) for i in range(classes)],
                {"model": "r3d_18", "width": width, "num_classes": classes, "in_channels": 3}))
            onnx_path = Path(export_onnx(ckp, workdir / f"w{width:g}" / "student.onnx", batch=batch,
                                         parity_clips=clips[:batch])["onnx"])
            files = {"fp32": onnx_path}
            if "int8" in precisions:
                from ..device.bundle import load_bundle
                from ..device.quantize import write_int8_metadata
                for flavor in ("cpu", "tensorrt"):
                    q = quantize_int8(onnx_path, clips, flavor=flavor)
                    write_int8_metadata(load_bundle(onnx_path), q["int8_onnx"], q)
                    files[f"int8-{flavor}"] = Path(q["int8_onnx"])
            for label, f in files.items():
                prec = label.split("-")[0]
                if prec not in precisions:
                    continue
                s = ort_session(f, ["CPUExecutionProvider"])
                paths.append({**common, "backend": "onnxruntime-cpu", "precision": label, "device": "cpu",
                              "fn": (lambda s=s: s.run(None, {"clip": x}))})
            import onnxruntime as ort
            if "CUDAExecutionProvider" in ort.get_available_providers():
                s = ort_session(onnx_path, ["CUDAExecutionProvider"])
                paths.append({**common, "backend": "onnxruntime-cuda", "precision": "fp32", "device": "cuda",
                              "fn": (lambda s=s: s.run(None, {"clip": x}))})
            else:
                paths.append({**common, "backend": "onnxruntime-cuda",
                              "skipped": "ONNX Runtime has no CUDAExecutionProvider here"})
        if "tensorrt" in backends:
            from ..device.engine import gpu_identity, tensorrt_or_none
            if tensorrt_or_none() is None:
                paths.append({**common, "backend": "tensorrt", "skipped": "TensorRT is not installed here"})
            elif gpu_identity() is None:
                paths.append({**common, "backend": "tensorrt", "skipped": "no GPU visible"})
            else:
                paths.extend(_tensorrt_paths(common, workdir, width, x, precisions))
    return paths


def _torch_fn(model, x):
    def fn():
        with torch.no_grad():
            return model(x)
    return fn


def _cuda_graph(model, x) -> Dict:
    try:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s), torch.no_grad():
            for _ in range(3):
                model(x)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g), torch.no_grad():
            model(x)
        return {"fn": g.replay, "sync": torch.cuda.synchronize}
    except Exception as e:
        return {"skipped": f"CUDA graph capture failed: {e}"}


def _tensorrt_paths(common, workdir, width, x, precisions):
    from ..device.engine import build_tensorrt_engine
    from ..device.runtime import TensorRTClassifier

    out = []
    onnx_path = workdir / f"w{width:g}" / "student.onnx"
    for prec in [p for p in precisions if p in ("fp16", "int8")]:
        src = onnx_path if prec == "fp16" else workdir / f"w{width:g}" / "student.int8.onnx"
        try:
            rep = build_tensorrt_engine(src, prec)
            clf = TensorRTClassifier(rep["engine"])
            out.append({**common, "backend": "tensorrt", "precision": prec, "device": "cuda",
                        "fn": (lambda c=clf: c.logits(x)), "layers": rep["layers"]["by_precision"]})
        except Exception as e:
            out.append({**common, "backend": "tensorrt", "precision": prec, "skipped": str(e)})
    return out


def run(widths=(1.0, 0.5), backends=("torch", "onnxruntime", "tensorrt"), precisions=("fp32", "fp16", "int8"),
        frames: int = 25, size: int = 112, batch: int = 1, warmup: int = 2, runs: int = 7, out: str = "runs/bench",
        video: Optional[str] = None, classes: int = 51, two_stream: bool = True, progress=None) -> Dict:
    """The pipeline benchmark: every backend and precision at each width, round-robin timed, with the
    live stages and the two-stream comparison; saves bench.json and bench.png.

    Args:
        widths, backends, precisions: the paths to build (see ``build_paths``).
        frames, size: the clip geometry (ClipSpec.at).
        batch: clips per call.
        warmup, runs: untimed runs, then timed rounds (every path once a round).
        out: folder of the JSON, the chart and the exported models.
        video: footage for decode and preprocessing (None: rendered motion).
        classes: classifier outputs.
        two_stream: also time the two-stream pipeline against the student.
        progress: a progress factory, or None.

    Returns:
        The result saved as bench.json.
    """
    spec = ClipSpec.at(frames, size)
    workdir = Path(out) / "models"
    workdir.mkdir(parents=True, exist_ok=True)
    result = {"environment": environment(), "input": [batch, *spec.input_shape], "warmup": warmup, "runs": runs}
    result["peak"] = {"cpu": measured_peak("cpu")}
    if torch.cuda.is_available():
        result["peak"]["cuda"] = measured_peak("cuda")
    result["live_stages"] = live_stages(video, spec, warmup, runs)
    result["live_stages"]["postprocess"] = postprocess_stage(classes, warmup, runs * 20)
    paths = build_paths(list(widths), spec, classes, workdir, list(backends), list(precisions), batch, video)
    # Round-robin: one timed run of every path per round, so a slow spell of a shared machine
    # lands on all paths alike (timing each path in one block let run-to-run drift reach 38%).
    live = [p for p in paths if "skipped" not in p]
    for p in live:
        for _ in range(warmup):
            p["fn"]()
        p["times"] = []
    rounds = progress(range(runs), desc="timing rounds", unit="round") if progress else range(runs)
    for _ in rounds:
        for p in live:
            if p.get("device") == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            p["fn"]()
            if p.get("sync"):
                p["sync"]()
            p["times"].append(time.perf_counter() - t)
    rows = []
    for p in paths:
        row = {k: v for k, v in p.items() if k not in ("fn", "sync", "times")}
        if "skipped" not in p:
            row["inference"] = stats(p["times"])
            sec = row["inference"]["median_ms"] / 1000
            row["clips_per_s"] = batch / sec
            row["frames_per_s"] = batch * frames / sec
            ls = result["live_stages"]
            decode = ls.get("decode_per_frame", {"median_ms": 0})["median_ms"]
            per_frame = decode + ls["preprocess_per_frame"]["median_ms"]
            # frame-to-label: the newest frame is decoded and preprocessed, the window classified, the scores
            # post-processed
            row["end_to_end_ms"] = per_frame + row["inference"]["median_ms"] + ls["postprocess"]["median_ms"]
            peak = result["peak"]["cuda" if p.get("device") == "cuda" else "cpu"]
            key = "int8_gmacs_per_s" if p["precision"].startswith("int8") else f"{p['precision']}_gmacs_per_s"
            achieved = p["gmacs"] / sec
            row["achieved_gmacs_per_s"] = achieved
            if peak.get(key):
                row["fraction_of_peak"] = achieved / peak[key]
                row["peak_used"] = key
            row["peak_rss_mb"] = peak_rss_mb()
            if p.get("device") == "cuda":
                row["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
        rows.append(row)
    result["paths"] = rows
    if two_stream:
        w = min(widths)
        fns = {f"{p['backend']} {p['precision']}": p["fn"] for p in paths
               if "skipped" not in p and p["width"] == w and p["backend"] in ("torch-cpu", "onnxruntime-cpu")}
        result["two_stream_vs_student"] = two_stream_vs_student(spec, classes, video, w, runs, fns)
    Path(out).mkdir(parents=True, exist_ok=True)
    from ..core.artifacts import atomic_write_text
    atomic_write_text(Path(out) / "bench.json", json.dumps(result, indent=2, default=str))
    from ..train.plots import bench_png
    bench_png(result, Path(out) / "bench.png")
    return result


def print_table(res: Dict) -> None:
    env = res["environment"]
    print(f"machine: {env.get('cpu', '?')} ({env.get('cpus')} cpus, torch threads {env.get('torch_threads')}, "
          f"{' '.join(env.get('cpu_features', []))}); GPU: {env.get('gpu', 'none')}; TensorRT: "
          f"{env['versions'].get('tensorrt') or 'absent'}")
    if env.get("jetson"):
        print(f"jetson power mode: {env['jetson'].get('nvpmodel', '?')[:80]}")
    pk = res["peak"]["cpu"]
    print(f"reference peak (fastest 2048^3 matrix product measured): fp32 {pk['fp32_gmacs_per_s']:.1f} GMAC/s, int8 "
          f"{(pk.get('int8_gmacs_per_s') or float('nan')):.1f} GMAC/s; %peak above 100 means the model's kernels beat "
          "it")
    ls = res["live_stages"]
    for k in ("decode_per_frame", "preprocess_per_frame", "postprocess"):
        if k in ls:
            s = ls[k]
            print(f"  {k:22s} median {s['median_ms']:7.2f} ms  p90 {s['p90_ms']:7.2f}  p99 {s['p99_ms']:7.2f}")
    print(f"\ninput {res['input']}; median of {res['runs']} rounds (every path once per round) after {res['warmup']} "
          f"warm-up runs; spread = IQR/median across rounds")
    print(f"  {'model':12s} {'backend':18s} {'prec':12s} {'median ms':>9s} {'p90':>8s} {'p99':>8s} {'min':>8s} "
          f"{'max':>8s} "
          f"{'clips/s':>8s} {'e2e ms':>8s} {'GMAC/s':>7s} {'%peak':>6s} {'spread':>6s}")
    for r in res["paths"]:
        if "skipped" in r:
            print(f"  {r['model']:12s} {r['backend']:18s} skipped: {r['skipped']}")
            continue
        i = r["inference"]
        frac = f"{100 * r['fraction_of_peak']:5.0f}%" if "fraction_of_peak" in r else "    -"
        print(f"  {r['model']:12s} {r['backend']:18s} {r['precision']:12s} {i['median_ms']:9.1f} {i['p90_ms']:8.1f} "
              f"{i['p99_ms']:8.1f} {i['min_ms']:8.1f} {i['max_ms']:8.1f} {r['clips_per_s']:8.2f} "
              f"{r['end_to_end_ms']:8.1f} "
              f"{r['achieved_gmacs_per_s']:7.1f} {frac} {100 * i['spread']:5.1f}%")
    ts = res.get("two_stream_vs_student")
    if ts:
        print(f"\ntwo-stream vs student on one clip ({ts['pairs']} flow pairs, width {ts['width']:g}):")
        for k, v in ts.items():
            if isinstance(v, dict) and "median_ms" in v:
                print(f"  {k:52s} {v['median_ms']:9.1f} ms   {ts['speedup_vs_opencv_two_stream'][k]:6.1f}x")


