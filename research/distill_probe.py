#!/usr/bin/env python
"""Why does (or doesn't) distillation help? Train one RGB student variant on a finished demo's data.

Reuses what `fts-edge demo --out DIR` leaves behind (DIR/data, DIR/flow_cache, DIR/teacher/last.pt)
and trains a student with any mix of: cross-entropy, pooled-feature mimicry (the paper's loss,
optionally on standardised teacher features), and a dense hint (the teacher's stem/layer1/layer2
maps, or the flow itself, regressed from the student's maps through a 1x1x1 convolution).
Prints one JSON line per epoch: train CE, mimic MSE, hint MSE, train and held-out top-1.
The held-out clips are the probe's own (DIR/probe/holdout: 10 videos per class rendered with
seed 99), never the demo's val split, so no setting chosen with this probe is tuned on the split
the demo's table reports.

    python research/distill_probe.py --demo runs/demo --alpha 0                    # RGB baseline
    python research/distill_probe.py --demo runs/demo --alpha 1 --standardise      # pooled mimicry
    python research/distill_probe.py --demo runs/demo --beta 1 --hint layer1 --opt adamw --lr 1e-3 --epochs 40

This is an experiment tool, not the training path: train/train_student.py is. One difference to
keep in mind: here the student's pooled features reach the teacher's through a learned linear map
even where the widths agree; the training path uses the identity then. research/sweep_alpha.py uses
the training path itself.
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HINTS = ("stem", "layer1", "layer2", "flow")


def stages(net, x):
    """The maps after the stem, layer1 and layer2, and the pooled features."""
    import torch

    maps = {}
    x = net.stem(x)
    maps["stem"] = x
    x = net.layer1(x)
    maps["layer1"] = x
    x = net.layer2(x)
    maps["layer2"] = x
    x = net.layer4(net.layer3(x))
    return maps, torch.flatten(net.avgpool(x), 1)


def main(argv=None, on_epoch=None) -> int:
    """Train one variant; each epoch's figures go to ``on_epoch`` (default: printed as a JSON line)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", required=True, help="a finished `fts-edge demo --out` folder")
    ap.add_argument("--alpha", type=float, default=0.0, help="weight of the pooled-feature mimic MSE")
    ap.add_argument("--standardise", action="store_true", help="mimic z-scored teacher features")
    ap.add_argument("--beta", type=float, default=0.0, help="weight of the dense hint MSE")
    ap.add_argument("--hint", choices=HINTS, default="layer1")
    ap.add_argument("--opt", choices=("sgd", "adamw"), default="sgd")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from fts_edge.checkpoint import build_from_checkpoint, load_checkpoint
    from fts_edge.errors import FtsError
    from fts_edge.models import create_model
    from fts_edge.training import ClipSet, TrainConfig, lr_factor, make_flow_cache, metrics, predict

    demo = Path(a.demo)
    try:
        state = json.loads((demo / "state.json").read_text())
        c = state["config"]
        teacher_ckpt = demo / "teacher" / "last.pt"
        if not teacher_ckpt.exists():
            raise FtsError(f"{teacher_ckpt} is missing: run `fts-edge demo --out {demo}` first")
    except (OSError, KeyError, json.JSONDecodeError) as e:
        print(f"error: {demo} is not a finished demo folder ({e})", file=sys.stderr)
        return 1
    except FtsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    cfg = TrainConfig.from_settings(dict(
        role="student", out=str(demo / "probe"), dataset="synthetic", root=str(demo / "data"),
        frames=c["frames"], size=c["size"], resize=c["resize"], stride=c.get("stride", 1), width=c["width"],
        epochs=a.epochs, batch_size=c["batch_size"], seed=a.seed, flow_cache=str(demo / "flow_cache"),
        teacher=str(teacher_ckpt), lr=a.lr))
    index, spec = cfg.index(), cfg.spec
    train = ClipSet(index.train, spec, True, index.flip, rgb=True, flow_cache=make_flow_cache(cfg), seed=a.seed)
    from fts_edge.datasets import dataset_index
    from fts_edge.synthetic import write_motion_dataset

    holdout = demo / "probe" / "holdout"
    write_motion_dataset(holdout, 10, 99, c["classes"], c["video_frames"], c["video_size"], c["video_size"],
                         val_fraction=0.5, background=c.get("background", 1.0))
    hidx = dataset_index("synthetic", str(holdout))
    assert hidx.classes == index.classes, (hidx.classes, index.classes)
    val = ClipSet(hidx.train + hidx.test, spec, False, index.flip, rgb=True, seed=a.seed)
    teacher = build_from_checkpoint(load_checkpoint(teacher_ckpt), teacher_ckpt).freeze()
    tnet = teacher.backbone
    torch.manual_seed(a.seed)
    net = create_model(cfg.model, len(index.classes), in_channels=3, width=cfg.width)

    with torch.no_grad():
        tmaps, tf = stages(tnet.eval(), torch.zeros(1, 2, spec.frames - 1, spec.size, spec.size))
        smaps, sf = stages(net.eval(), torch.zeros(1, 3, spec.frames, spec.size, spec.size))
    src = "stem" if a.hint == "flow" else a.hint
    adapter = nn.Conv3d(smaps[src].shape[1], 2 if a.hint == "flow" else tmaps[a.hint].shape[1], 1)
    proj = nn.Linear(sf.shape[1], tf.shape[1])
    params = list(net.parameters()) + list(adapter.parameters()) + list(proj.parameters())
    opt = (torch.optim.SGD(params, lr=a.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
           if a.opt == "sgd" else torch.optim.AdamW(params, lr=a.lr, weight_decay=1e-4))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: lr_factor(cfg, e))
    mu, sd = 0.0, 1.0
    if a.standardise:  # per-dimension statistics of the teacher's features over the training clips
        with torch.no_grad():
            flows = torch.stack([train[i]["flow"] for i in range(len(train))])
            _, feats = stages(tnet, teacher.normalise_flow(flows))
            mu, sd = feats.mean(0), feats.std(0) + 1e-3

    gen = torch.Generator().manual_seed(a.seed)
    bs = cfg.batch_size
    for epoch in range(a.epochs):
        train.epoch = epoch
        net.train()
        order = torch.randperm(len(train), generator=gen).tolist()
        tot = {"ce": 0.0, "mse": 0.0, "hint": 0.0, "correct": 0, "n": 0}
        t0 = time.perf_counter()
        for b in range(len(order) // bs):
            batch = torch.utils.data.default_collate([train[i] for i in order[b * bs:(b + 1) * bs]])
            x, y = batch["rgb"], batch["label"]
            maps, f = stages(net, x)
            logits = net.fc(f)
            with torch.no_grad():
                flow = teacher.normalise_flow(batch["flow"])
                tm, tfeat = stages(tnet, flow)
            ce = F.cross_entropy(logits, y)
            mse = F.mse_loss(proj(f), (tfeat - mu) / sd) if a.alpha else torch.zeros(())
            hint = torch.zeros(())
            if a.beta:
                target = tm[a.hint] if a.hint != "flow" else flow
                pred = adapter(maps[src])
                if a.hint == "flow":
                    target = F.adaptive_avg_pool3d(target, pred.shape[2:])
                else:
                    pred = F.adaptive_avg_pool3d(pred, target.shape[2:])
                hint = F.mse_loss(pred, target)
            loss = ce + a.alpha * mse + a.beta * hint
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
            opt.step()
            n = len(y)
            tot["n"] += n
            tot["ce"] += ce.item() * n
            tot["mse"] += mse.item() * n
            tot["hint"] += hint.item() * n
            tot["correct"] += int((logits.argmax(1) == y).sum())
        sched.step()
        pv = predict(net, val, "rgb")
        m = metrics(pv["probs"], pv["labels"])
        (on_epoch or (lambda r: print(json.dumps(r), flush=True)))({
                          "epoch": epoch + 1, "train_ce": round(tot["ce"] / tot["n"], 4),
                          "mimic_mse": round(tot["mse"] / tot["n"], 4), "hint_mse": round(tot["hint"] / tot["n"], 4),
                          "train_top1": round(100 * tot["correct"] / tot["n"], 1), "holdout_top1": round(m["top1"], 1),
                          "seconds": round(time.perf_counter() - t0, 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
