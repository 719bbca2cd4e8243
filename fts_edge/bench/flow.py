"""Benchmark of the flow stage: OpenCV DualTVL1 (one pair at a time, as people run it) against
the TVL1 layers (batched), on the same pairs, in one run. Accuracy from known displacement
fields at the same size; speed on real footage (25 frames of vtest.avi = 24 pairs)."""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from ..flow.evaluation import endpoint_error, known_pairs, opencv_tvl1
from ..flow.tvl1 import TVL1


def cover_crop(frame: np.ndarray, h: int, w: int) -> np.ndarray:
    """Scale a frame so it covers h x w, then take the centre h x w."""
    import cv2

    scale = max(h / frame.shape[0], w / frame.shape[1])
    size = (max(w, round(frame.shape[1] * scale)), max(h, round(frame.shape[0] * scale)))
    f = cv2.resize(frame, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    y, x = (f.shape[0] - h) // 2, (f.shape[1] - w) // 2
    return f[y:y + h, x:x + w]


def _real_pairs(video: Optional[str], h: int, w: int, n: int = 25):
    """n grey frames (n, h, w) uint8 from a real video, or rendered motion if none is given."""
    import cv2

    from ..data.video import read_frames

    if video and Path(video).exists():
        frames, src = read_frames(video, max_frames=n), f"real ({Path(video).name})"
    else:
        from ..data.synthetic import render_clip
        frames, src = render_clip(0, seed=0, frames=n, height=h, width=w), "rendered motion"
    return np.stack([cv2.cvtColor(cover_crop(f, h, w), cv2.COLOR_RGB2GRAY) for f in frames]), src


def _time(fn, repeats: int) -> List[float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def run(video: Optional[str] = None, sizes=((112, 112), (240, 320)), repeats: int = 3, devices=None,
        known_per_kind: int = 2, progress=None) -> Dict:
    """Time OpenCV's DualTVL1 and the TVL1 layers side by side on the same pairs, and judge both on
    synthetic pairs of known flow.

    Args:
        video: footage to time on (25 frames of it); None: rendered motion.
        sizes: the (H, W) frame sizes to measure.
        repeats: timed repeats of each method (the median is reported).
        devices: "cpu" and/or "cuda" (default: what exists).
        known_per_kind: synthetic pairs of each kind of known flow for the accuracy.
        progress: a progress factory (core.progress.progress) or None.

    Returns:
        The result: per size, each method's seconds a clip, pairs a second, speed-up and EPE.
    """
    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if "cuda" in devices and not torch.cuda.is_available():
        from ..core.errors import FtsError
        raise FtsError("--devices cuda: no CUDA GPU is visible to torch here; use --devices cpu")
    solvers = {f"TVL1 {name}": TVL1.preset(name) for name in ("default", "fast")}
    result = {"torch_threads": torch.get_num_threads(), "repeats": repeats, "sizes": {}, "devices": devices}
    if "cuda" not in devices:
        result["cuda"] = "skipped: no CUDA GPU on this machine"
    for (h, w) in sizes:
        frames, src = _real_pairs(video, h, w)
        pairs = len(frames) - 1
        entry = {"pairs": pairs, "source": src, "methods": {}}
        known = list(known_pairs(known_per_kind, seed=0, h=h, w=w, magnitude=8.0))
        # OpenCV, one pair at a time
        cv_times = _time(lambda: [opencv_tvl1(frames[i], frames[i + 1]) for i in range(pairs)], repeats)
        cv_flow = [opencv_tvl1(frames[i], frames[i + 1]) for i in range(pairs)]
        cv_epe = [endpoint_error(opencv_tvl1(f1, f2), gt, m) for _, f1, f2, gt, m in known]
        entry["methods"]["opencv DualTVL1 (cpu, one by one)"] = {
            "seconds": statistics.median(cv_times), "pairs_per_s": pairs / statistics.median(cv_times),
            "epe_known": float(np.mean(cv_epe)), "runs_s": cv_times}
        a = torch.tensor(frames[:-1], dtype=torch.float32)[:, None]
        b = torch.tensor(frames[1:], dtype=torch.float32)[:, None]
        ka = torch.tensor(np.stack([k[1] for k in known]), dtype=torch.float32)[:, None]
        kb = torch.tensor(np.stack([k[2] for k in known]), dtype=torch.float32)[:, None]
        for dev in devices:
            for name, solver in solvers.items():
                s = solver.to(dev)
                da, db = a.to(dev), b.to(dev)

                def go():
                    with torch.no_grad():
                        out = s(da, db)
                    if dev == "cuda":
                        torch.cuda.synchronize()
                    return out

                go()  # warm-up (allocator, kernels)
                times = _time(go, repeats)
                with torch.no_grad():
                    f = s(da, db).permute(0, 2, 3, 1).cpu().numpy()
                    kf = s(ka.to(dev), kb.to(dev)).permute(0, 2, 3, 1).cpu().numpy()
                epe = [endpoint_error(kf[i], known[i][3], known[i][4]) for i in range(len(known))]
                med = statistics.median(times)
                entry["methods"][f"{name} ({dev}, batched)"] = {
                    "seconds": med, "pairs_per_s": pairs / med, "epe_known": float(np.mean(epe)),
                    "epe_vs_opencv_real": float(np.mean([endpoint_error(f[i], cv_flow[i]) for i in range(pairs)])),
                    "speedup_vs_opencv": statistics.median(cv_times) / med, "runs_s": times}
        result["sizes"][f"{h}x{w}"] = entry
    return result


def robust_scenes(n_per_kind: int = 4, seed: int = 0, h: int = 112, w: int = 112) -> Dict:
    """End-point error on scenes that break TV-L1's assumptions (``flow.evaluation.scene_pair``: a
    moving camera, a brightness change, both), for OpenCV's DualTVL1 and the TVL1 layers (fast
    preset) with each camera and illumination option. Two truths: every pixel's motion ("full")
    and the object's motion in the scene ("object": what the teacher should see once the camera is
    removed)."""
    from ..data.clipspec import FLOW_CAMERA, FLOW_ILLUMINATION
    from ..flow.evaluation import SCENES, scene_pair

    rng = np.random.default_rng(seed)
    pairs = {kind: [scene_pair(kind, rng, h, w) for _ in range(n_per_kind)] for kind in SCENES}
    rows: Dict[str, Dict] = {}

    def score(name, flows):
        rows[name] = {kind: {"full": float(np.mean([endpoint_error(f, p[2], p[4]) for f, p in zip(flows[kind], ps)])),
                             "object": float(np.mean([endpoint_error(f, p[3], p[4])
                                                      for f, p in zip(flows[kind], ps)]))}
                      for kind, ps in pairs.items()}

    score("opencv DualTVL1", {k: [opencv_tvl1(p[0], p[1]) for p in ps] for k, ps in pairs.items()})
    for cam in FLOW_CAMERA:
        for ill in FLOW_ILLUMINATION:
            solver = TVL1.preset("fast", camera=cam, illumination=ill)
            flows = {}
            for kind, ps in pairs.items():
                a = torch.tensor(np.stack([p[0] for p in ps]), dtype=torch.float32)[:, None]
                b = torch.tensor(np.stack([p[1] for p in ps]), dtype=torch.float32)[:, None]
                with torch.no_grad():
                    flows[kind] = list(solver(a, b).permute(0, 2, 3, 1).numpy())
            score(f"TVL1 fast, camera={cam}, illumination={ill}", flows)
    return {"pairs_per_scene": n_per_kind, "size": f"{h}x{w}", "seed": seed, "methods": rows}


def print_scenes(res: Dict) -> None:
    kinds = list(next(iter(res["methods"].values())))
    print(f"\nscenes that break brightness constancy ({res['pairs_per_scene']} pairs each, {res['size']}): EPE px "
          "against the object's motion (camera removed) / every pixel's motion")
    print(f"  {'method':62s} " + " ".join(f"{k:>17s}" for k in kinds))
    for name, row in res["methods"].items():
        print(f"  {name:62s} " + " ".join(f"{row[k]['object']:7.3f} / {row[k]['full']:7.3f}" for k in kinds))


def print_table(result: Dict) -> None:
    for size, entry in result["sizes"].items():
        print(f"\n{size}: {entry['pairs']} pairs of {entry['source']} footage; accuracy on known fields at the same "
              "size")
        print(f"  {'method':44s} {'s/clip':>8s} {'pairs/s':>8s} {'speed-up':>9s} {'EPE px':>7s} {'vs CV px':>8s}")
        for name, m in entry["methods"].items():
            print(f"  {name:44s} {m['seconds']:8.3f} {m['pairs_per_s']:8.1f} {m.get('speedup_vs_opencv', 1.0):8.2f}x "
                  f"{m['epe_known']:7.3f} {m.get('epe_vs_opencv_real', 0.0):8.3f}")
    if "cuda" in result:
        print(f"\nCUDA: {result['cuda']}")


def save(result: Dict, out: str) -> Path:
    from ..core.artifacts import atomic_write_text

    p = Path(out)
    atomic_write_text(p, json.dumps(result, indent=2))
    return p
