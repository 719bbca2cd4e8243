#!/usr/bin/env python
"""Can the RGB network learn the motion dataset at all, with memorisation ruled out?

Trains an RGB r3d_18 on motion clips rendered fresh for every batch (no clip is ever seen twice,
so appearance cannot be memorised) and scores it every --every steps on 10 held-out clips per
class of its own (seed 99), never the validation videos of `fts-edge demo`: nothing chosen with
this probe is tuned on the split the demo's table reports. Prints one JSON line per report.
This separates "the network cannot see the motion in this budget" from "it memorises".

    python research/rgb_probe.py --classes 10 --steps 800                 # the demo's data: textured backdrop
    python research/rgb_probe.py --classes 4 --steps 300 --background 0   # translations on a flat backdrop
    python research/rgb_probe.py --classes 4 --steps 400 --stride 2       # frames 2 apart: twice the motion per step

An experiment tool, not the training path (train/train_student.py is).
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--classes", type=int, default=10, help="motion classes, 2..10 (default 10)")
    ap.add_argument("--background", type=float, default=1.0, help="backdrop contrast, 0 flat .. 1 (default 1)")
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--every", type=int, default=50, help="report every N steps (default 50)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--opt", choices=("sgd", "adamw"), default="adamw")
    ap.add_argument("--lr", type=float, default=2e-3, help="peak of a one-cycle schedule (default 2e-3)")
    ap.add_argument("--width", type=float, default=0.125)
    ap.add_argument("--video-frames", type=int, default=16)
    ap.add_argument("--video-size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=56)
    ap.add_argument("--stride", type=int, default=1, help="temporal stride, in video frames (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if not (2 <= a.classes <= 10 and 0 <= a.background <= 1 and (a.frames - 1) * a.stride < a.video_frames
            and a.size <= a.video_size and a.steps > 0 and a.every > 0):
        print("error: need 2 <= --classes <= 10, 0 <= --background <= 1, (--frames - 1) * --stride < --video-frames, "
              "--size <= --video-size, --steps and --every > 0", file=sys.stderr)
        return 2

    import numpy as np
    import torch
    import torch.nn.functional as F

    from fts_edge.clipspec import ClipSpec
    from fts_edge.models import create_model
    from fts_edge.synthetic import render_clip
    from fts_edge.transforms import clip_geometry, crop_clip, sample_indices

    spec = ClipSpec(frames=a.frames, size=a.size, resize=a.video_size, stride=a.stride)
    rng = np.random.default_rng(a.seed)

    def clip(label, seed, index, train):
        """The training loop's own sampling, crop and normalisation (no flips: they swap classes)."""
        v = render_clip(label, seed, index, a.video_frames, a.video_size, a.video_size, a.background)
        (idx,) = sample_indices(len(v), spec, "random" if train else "center", rng)
        geometry = clip_geometry(a.video_size, a.video_size, spec, train, rng, flip=False)
        return torch.from_numpy(crop_clip(v[idx], geometry, spec))

    vx = torch.stack([clip(k, 99, i, False) for k in range(a.classes) for i in range(10)])
    vy = torch.arange(a.classes).repeat_interleave(10)
    torch.manual_seed(a.seed)
    net = create_model("r3d_18", a.classes, width=a.width)
    opt = (torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=1e-4) if a.opt == "adamw"
           else torch.optim.SGD(net.parameters(), lr=a.lr, momentum=0.9, weight_decay=5e-4))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=a.steps, pct_start=0.1)
    fresh = 100000 + 1000000 * a.seed  # far from the indices any written dataset uses
    t0, correct, seen, ce_sum = time.perf_counter(), 0, 0, 0.0
    for step in range(1, a.steps + 1):
        y = torch.from_numpy(rng.integers(0, a.classes, a.batch))
        x = torch.stack([clip(int(k), 7, fresh + step * a.batch + j, True) for j, k in enumerate(y)])
        net.train()
        logits = net(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        sched.step()
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        ce_sum += loss.item() * len(y)
        if step % a.every == 0 or step == a.steps:
            net.eval()
            with torch.no_grad():
                val = float((net(vx).argmax(1) == vy).float().mean() * 100)
            print(json.dumps({"step": step, "clips_seen": step * a.batch, "train_ce": round(ce_sum / seen, 4),
                              "train_top1": round(100 * correct / seen, 1), "val_top1": round(val, 1),
                              "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
            correct, seen, ce_sum = 0, 0, 0.0
    return 0


if __name__ == "__main__":
    sys.exit(main())
