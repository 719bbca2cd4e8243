"""Training on a workstation: the flow teacher, the RGB baseline and the distilled student share
one loop. The loop is deterministic on the CPU for a seed (data order, crops and flips are
functions of (seed, epoch, index)), writes its checkpoint atomically after every epoch, and
``resume`` continues from the last finished epoch to the same weights an uninterrupted run ends
with. Under ``torchrun`` it runs DistributedDataParallel (NCCL on GPUs, gloo on CPUs); only
rank 0 logs and saves.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.artifacts import atomic_write_text
from ..core.errors import CheckpointError, DatasetError, FtsError, UsageError
from ..data.datasets import DatasetIndex
from ..nets.checkpoint import (
    build_from_checkpoint,
    load_checkpoint,
    load_teacher,
    make_checkpoint,
    save_checkpoint,
    save_with_bundle,
)
from ..nets.names import hint_layers, same_layers
from .config import PRECISIONS, TrainConfig, arch_of, changed_settings, window_of  # noqa: F401  (re-exported)
from .data import ClipSet
from .distill import FeatureProjection, distillation_loss
from .evaluate import metrics, score

log = logging.getLogger(__name__)
# -- data -----------------------------------------------------------------------------------
def data_workers(cfg: TrainConfig) -> int:
    """DataLoader worker processes: ``--workers``, or where it is -1 (auto) none on a machine of
    two cores or fewer (they would take the cores training needs) and half the cores, at most 8,
    elsewhere."""
    if cfg.workers >= 0:
        return cfg.workers
    cpus = os.cpu_count() or 1
    return 0 if cpus <= 2 else min(8, cpus // 2)


def flow_store(cfg: TrainConfig):
    """The flow store of a run: ``--flow-cache`` (default <out>/../flow_cache), keyed by the
    run's TV-L1 preset, short side and stride."""
    from ..flow.store import open_store

    folder = cfg.flow_cache or str(Path(cfg.out).parent / "flow_cache")
    preset, camera, illumination = flow_settings(cfg)
    return open_store(folder, preset, cfg.spec.resize, cfg.spec.stride, camera, illumination)


def flow_settings(cfg: TrainConfig):
    """(preset, camera, illumination) of the flow a run reads: its own for the teacher, the
    teacher's for a student (the teacher sees its flow as it was trained on it)."""
    if cfg.role != "teacher" and cfg.teacher:
        fl = load_teacher(cfg.teacher).get("flow", {})
        return fl.get("preset", cfg.flow_preset), fl.get("camera", "none"), fl.get("illumination", "none")
    return cfg.flow_preset, cfg.flow_camera, cfg.flow_illumination


def build_flow(cfg: TrainConfig, store, items, progress=None, world: int = 1, rank: int = 0,
               desc: str = "computing flow (once)") -> Dict[str, str]:
    """The flow of ``items`` computed into ``store`` (each process its share, then all wait for
    the rest); returns the videos that could not be read, with the reason."""
    from ..flow.store import build_store

    preset, camera, illumination = store.solver  # the settings the store was opened with (flow_store)
    rep = build_store(store, items, cfg.spec, preset, cfg.device, progress if rank == 0 else None,
                      rank, world, desc=desc, camera=camera, illumination=illumination)
    if world > 1:
        torch.distributed.barrier()
        store.index([it.path for it in items], save=False)  # the keys rank 0 saved
    return rep["unreadable"]


def precompute_flow(cfg: TrainConfig, progress=None) -> Dict:
    """The flow store of ``cfg``'s dataset and clip geometry, built as a stage of its own (the
    scripts' users run it as ``fts-edge data flow``; under torchrun each process takes its share):
    every training and validation video's flow, what is missing only. Returns the counts."""
    world, rank, _ = init_distributed(cfg.device)
    index = cfg.index()
    store = flow_store(cfg)
    t0 = time.perf_counter()
    unreadable = {}
    for items, desc in ((index.train, "computing flow (training videos)"), (index.test, "computing flow (validation)")):
        unreadable.update(build_flow(cfg, store, items, progress, world, rank, desc=desc))
    return {"store": str(store.folder / store.tag), "videos": len(index.train) + len(index.test),
            "unreadable": unreadable, "bytes": store.size_bytes(), "seconds": round(time.perf_counter() - t0, 1),
            "rank": rank, "world": world}


# -- distributed ----------------------------------------------------------------------------
def dist_info():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return world, rank, local


def init_distributed(device: str):
    world, rank, local = dist_info()
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if device.startswith("cuda"):
            torch.cuda.set_device(local)
        torch.distributed.init_process_group(backend=backend)
    return world, rank, local


class DistBatchNorm3d(nn.BatchNorm3d):
    """BatchNorm over the global batch of all processes, on any device (torch's SyncBatchNorm
    wants a GPU). Per-channel sums and sums of squares are all-reduced with the autograd-aware
    all_reduce, so gradients flow through the shared statistics as in SyncBatchNorm; a two-process
    run then matches a one-process run of the same global batch."""

    def forward(self, x):
        if not (self.training and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        c = x.shape[1]
        dims = [0, 2, 3, 4]
        n = torch.tensor([x.numel() / c], dtype=x.dtype, device=x.device)
        stats = all_reduce(torch.cat([x.sum(dims), (x * x).sum(dims), n]))
        count = stats[-1]
        mean = stats[:c] / count
        var = stats[c:2 * c] / count - mean * mean
        with torch.no_grad():
            m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked + 1)
            self.running_mean.mul_(1 - m).add_(m * mean.detach())
            self.running_var.mul_(1 - m).add_(m * var.detach() * count / max(float(count) - 1, 1.0))
            self.num_batches_tracked += 1
        shape = (1, c, 1, 1, 1)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape) if self.affine else y


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Batch statistics over the global batch: SyncBatchNorm on GPUs, DistBatchNorm3d elsewhere."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for m in module.modules():
        if type(m) is nn.BatchNorm3d:
            m.__class__ = DistBatchNorm3d  # same parameters and buffers, global statistics
    return module


# -- the networks of each role --------------------------------------------------------------
def build_networks(cfg: TrainConfig, num_classes: int):
    """(trainable model, frozen teacher or None, projection or None)."""
    from ..nets.models import FlowTeacher, create_model

    torch.manual_seed(cfg.seed)
    in_ch = 2 if cfg.role == "teacher" else 3
    net = create_model(cfg.model, num_classes, in_channels=in_ch, width=cfg.width, window=window_of(cfg))
    if cfg.pretrained:
        rep = load_pretrained(net, cfg.pretrained)
        log.info("%s: %d tensors from %s, %d left as initialised (%s)", cfg.role, len(rep["loaded"]), cfg.pretrained,
                 len(rep["skipped"]), ", ".join(rep["skipped"][:4]))
    teacher, proj = None, None
    if cfg.role == "teacher":
        from ..flow.tvl1 import TVL1
        spec = cfg.spec
        net = FlowTeacher(net, spec.mean, spec.std, flow_scale=cfg.flow_scale,
                          tvl1=TVL1.preset(cfg.flow_preset, cfg.flow_camera, cfg.flow_illumination))
    if cfg.teacher and cfg.alpha > 0 and cfg.role in ("student", "teacher"):  # a flow network may follow a teacher too
        tck = load_teacher(cfg.teacher)
        if tck["arch"]["num_classes"] != num_classes:
            raise CheckpointError(f"{cfg.teacher}: the teacher knows {tck['arch']['num_classes']} classes, "
                                  f"this dataset has {num_classes}")
        teacher = build_from_checkpoint(tck, cfg.teacher).freeze()
        proj = FeatureProjection(net.num_features, teacher.num_features)
        for flag, on in (("--hint", cfg.hint and not cfg.hint_from), ("--init-from-teacher", cfg.init_from_teacher)):
            if on and not (same_layers(tck["arch"]["model"], cfg.model) and tck["arch"]["width"] == cfg.width):
                raise CheckpointError(f"{cfg.teacher}: {flag} needs the student built as its teacher is "
                                      f"({tck['arch']['model']} at width {tck['arch']['width']:g}), "
                                      f"not {cfg.model} at width {cfg.width:g}")
        if cfg.init_from_teacher and cfg.role == "teacher":  # flow to flow: every weight, the stem included
            net.backbone.load_state_dict(teacher.backbone.state_dict())
        elif cfg.init_from_teacher:
            init_from_teacher(net, teacher)
        if cfg.hint_from:
            maps_from = student_shaped_flow_network(cfg, cfg.hint_from, "--hint-from", num_classes)
            teacher = HintedTeacher(teacher, maps_from)
    if cfg.init_from:
        init_from_teacher(net, student_shaped_flow_network(cfg, cfg.init_from, "--init-from", num_classes))
    if cfg.init_stem_from:
        init_stem(net, cfg)
    return net, teacher, proj


def init_stem(net: nn.Module, cfg: TrainConfig) -> None:
    """Start the student's stem from an RGB network's (``--init-stem-from``, the clip student's):
    one convolution, so a clip network's carries over to a causal one as the same filter one frame
    later; with ``--init-from`` a causal copy of the teacher, the student then starts as the clip
    student's stem feeding the teacher's blocks, laid out causally."""
    ck = load_checkpoint(cfg.init_stem_from)
    if ck.get("role") not in ("student", "rgb") or ck["arch"]["width"] != cfg.width:
        raise CheckpointError(f"{cfg.init_stem_from}: --init-stem-from needs an RGB network (a student or the RGB "
                              f"baseline) at width {cfg.width:g}, not a {ck.get('role')} at width "
                              f"{ck['arch']['width']:g}")
    own = net.state_dict()
    stem = {k: v for k, v in ck["model"].items() if k.startswith("stem.")}
    if not stem or any(k not in own or own[k].shape != v.shape for k, v in stem.items()):
        raise CheckpointError(f"{cfg.init_stem_from}: its stem does not fit this network's")
    net.load_state_dict(stem, strict=False)


class HintedTeacher(nn.Module):
    """The teacher's pooled features with another flow network's block maps for the hint
    (``--hint-from``): a streaming student follows the clip teacher's features, but the clip
    teacher's layer3 outputs sit on other frames than a causal network's, so its hint maps come from
    the teacher's causal copy, whose maps sit where the student's do."""

    def __init__(self, teacher: nn.Module, maps_from: nn.Module):
        super().__init__()
        self.teacher, self.maps_from = teacher, maps_from

    @property
    def num_features(self) -> int:
        return self.teacher.num_features

    def forward_flow_features_and_maps(self, flow: torch.Tensor, layers: Sequence[str]):
        f = self.teacher.forward_flow_features(flow)
        return f, (self.maps_from.forward_flow_features_and_maps(flow, layers)[1] if layers else [])

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.teacher.forward_head(features)


def student_shaped_flow_network(cfg: TrainConfig, path: str, flag: str, num_classes: int) -> nn.Module:
    """The flow network of ``--init-from`` or ``--hint-from``, frozen, checked to be built exactly as
    the student is and to know the same classes: its blocks then carry over and its maps sit on the
    student's frames. Not merely the same shapes: a clip network's blocks do not carry over to causal
    convolutions (docs/experiments.md), so the streaming student starts from, and follows the maps
    of, the teacher's causal copy."""
    ck = load_teacher(path, flag=flag)
    arch = ck["arch"]
    if arch["num_classes"] != num_classes:
        raise CheckpointError(f"{path}: {flag}'s network knows {arch['num_classes']} classes, "
                              f"this dataset has {num_classes}")
    if (arch["model"], arch["width"]) != (cfg.model, cfg.width):
        raise CheckpointError(f"{path}: {flag} needs a flow network built as the student is ({cfg.model} "
                              f"at width {cfg.width:g}), not {arch['model']} at width {arch['width']:g}")
    return build_from_checkpoint(ck, path).freeze()


def load_pretrained(net: nn.Module, path: str) -> Dict[str, List[str]]:
    """Start a network from a torchvision-format video ResNet state dict (r3d_18 trained on
    Kinetics-400, downloaded by the user): every tensor whose name and shape match is loaded; the
    classifier (400 Kinetics classes) and, for the flow teacher, the stem (2 flow channels, not 3
    colours) stay as initialised. Loaded with weights_only=True."""
    from ..nets.checkpoint import safe_load

    p = Path(path)
    sd = safe_load(p, "state dict")
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"--pretrained {p}: not a state dict of tensors (a torchvision r3d_18 .pth)")
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    own = net.state_dict()
    loaded = [k for k, v in sd.items() if k in own and own[k].shape == v.shape]
    skipped = sorted(k for k in own if k not in loaded)
    body = [k for k in own if not k.startswith(("fc.", "stem.0."))]
    if sum(k in loaded for k in body) < len(body) // 2:
        raise CheckpointError(f"--pretrained {p}: only {len(loaded)} of {len(own)} tensors fit this network; it takes "
                              "a "
                              f"torchvision r3d_18 state dict at --width 1.0 (and --model r3d_18)")
    net.load_state_dict({**own, **{k: sd[k] for k in loaded}})
    return {"loaded": loaded, "skipped": skipped}


def init_from_teacher(net: nn.Module, teacher: nn.Module) -> List[str]:
    """Copy the frozen teacher's backbone into the RGB student, all but the stem (whose first
    convolution reads 2 flow channels, not 3 colours, and which stays as initialised): the student
    then only has to learn to turn frames into what the teacher's blocks expect, which the hint
    on an early block (``--hint``) asks for directly. Returns the names of the tensors copied."""
    own = net.state_dict()
    copied = {k: v for k, v in teacher.backbone.state_dict().items()
              if not k.startswith("stem.") and k in own and own[k].shape == v.shape}
    net.load_state_dict(copied, strict=False)
    return sorted(copied)


class RoleForward(nn.Module):
    """What one training step runs, as one module (so DistributedDataParallel can wrap it):
    input -> (logits, features for the mimic loss or None, the ``hint`` blocks' feature maps, a list)."""

    def __init__(self, net: nn.Module, role: str, proj: Optional[nn.Module] = None, mode: str = "ftsnet",
                 hint: Sequence[str] = ()):
        super().__init__()
        self.net, self.role, self.proj, self.mode, self.hint = net, role, proj, mode, tuple(hint)

    def forward(self, x):
        if self.role == "teacher":  # features only when it follows a teacher (proj is then set)
            f = self.net.forward_flow_features(x)
            return self.net.forward_head(f), (self.proj(f) if self.proj is not None else None), []
        f, maps = self.net.forward_features_and_maps(x, self.hint)
        logits = self.net.forward_head(f.detach() if self.mode == "mers" else f)
        return logits, (self.proj(f) if self.proj is not None else None), maps


# -- schedule -------------------------------------------------------------------------------
def make_optimizer(cfg: TrainConfig, params):
    """SGD with momentum (the paper's), or AdamW with decoupled weight decay."""
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def lr_factor(cfg: TrainConfig, epoch: int) -> float:
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    e = epoch - cfg.warmup_epochs
    n = max(1, cfg.epochs - cfg.warmup_epochs)
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * e / n))
    return 0.1 ** (e // max(1, n // 3))


# -- the loop -------------------------------------------------------------------------------
def fit(cfg: TrainConfig, resume: bool = True, progress=None, stop_after_steps: Optional[int] = None) -> Dict:
    """Train one role. Returns the final summary (best/last metrics and paths).

    ``stop_after_steps`` (for tests of resuming) returns early after that many optimiser steps,
    as a kill would, without saving anything beyond the last finished epoch.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    world, rank, _ = init_distributed(cfg.device)
    if rank != 0:
        return _fit(cfg, resume, progress, stop_after_steps, world, rank)
    with RunLock(Path(cfg.out)):  # only rank 0 writes the folder
        return _fit(cfg, resume, progress, stop_after_steps, world, rank)


@dataclass
class Run:
    """One role's training in memory: its data, networks, optimiser, and where it stands."""

    cfg: TrainConfig
    index: DatasetIndex
    train_ds: ClipSet
    val_ds: ClipSet
    net: nn.Module
    teacher: Optional[nn.Module]
    proj: Optional[nn.Module]
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    dev: torch.device
    world: int = 1
    rank: int = 0
    start: int = 0  # the first epoch still to train
    best: float = -1.0  # the best validation top-1 so far
    model: Optional[nn.Module] = None  # what a step calls: RoleForward, wrapped in DDP over several processes
    batches: Optional["EpochBatches"] = None  # this process's share of each epoch's batches
    loader: Optional[torch.utils.data.DataLoader] = None
    skipped: set = dataclasses.field(default_factory=set)  # unreadable videos replaced in a batch
    scaler: Optional["torch.amp.GradScaler"] = None  # fp16: the loss scale, part of the state a resume restores

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)

    @property
    def last_path(self) -> Path:
        return self.out / "last.pt"

    @property
    def master(self) -> bool:
        return self.rank == 0

    @property
    def params(self) -> List[nn.Parameter]:
        return list(self.net.parameters()) + (list(self.proj.parameters()) if self.proj is not None else [])


def build_run(cfg: TrainConfig, world: int, rank: int, progress) -> Run:
    """The data (checked; flow computed once where the role needs it), the networks and the optimiser."""
    index = cfg.index()
    where = cfg.root or cfg.dataset
    if not index.train or not index.test:
        raise DatasetError(f"{where}: {len(index.train)} training and {len(index.test)} validation videos; both are "
                           "needed: add videos (a fifth of each class is held out), or give train/ and val/ folders")
    if index.anomalies and not cfg.allow_split_anomalies:
        raise DatasetError(f"the split has {len(index.anomalies)} problem(s), e.g. {index.anomalies[0]}; "
                           "`fts-edge data check` lists them; fix the split files or pass --allow-split-anomalies")
    net, teacher, proj = build_networks(cfg, len(index.classes))  # a wrong --teacher/--init-from fails before flow
    need_flow = cfg.role == "teacher" or (cfg.role == "student" and cfg.alpha > 0)
    store = flow_store(cfg) if need_flow else None
    train_items = list(index.train)
    if cfg.unlabeled:  # videos without labels: the student follows the teacher on them (no cross-entropy)
        from ..data.datasets import unlabeled_items

        extra = unlabeled_items(cfg.unlabeled, index)
        log.info(f"{cfg.unlabeled}: {len(extra)} unlabeled videos beside the {len(train_items)} labeled ones")
        train_items += extra
    unreadable: Dict[str, str] = {}
    if store is not None:  # the flow of every video, computed once before training (each process its share)
        unreadable = build_flow(cfg, store, train_items, progress, world, rank)
        if cfg.role == "teacher":
            build_flow(cfg, store, index.test, progress, world, rank, desc="computing flow (validation)")
    workers = data_workers(cfg)
    train_ds = ClipSet(train_items, cfg.spec, True, index.flip, rgb=cfg.role != "teacher", store=store,
                       seed=cfg.seed, frame_cache_mb=cfg.frame_cache_mb, workers=workers, unreadable=unreadable,
                       augment=(cfg.augment_light, cfg.augment_shake))
    val_ds = ClipSet(index.test, cfg.spec, False, index.flip, rgb=cfg.role != "teacher",
                     store=store if cfg.role == "teacher" else None, seed=cfg.seed, frame_cache_mb=cfg.frame_cache_mb)
    if len(train_ds) < cfg.batch_size:
        raise UsageError(f"--batch-size {cfg.batch_size} is larger than the training set ({len(train_ds)} clips): no "
                         f"step would run; use --batch-size {len(train_ds)} or less")
    if cfg.batch_size % world:
        raise ValueError(f"batch size {cfg.batch_size} does not split over {world} processes")
    dev = torch.device(cfg.device)
    dtype = param_dtype(cfg)
    for m in (net, teacher, proj):
        if m is not None:
            m.to(dev, dtype)
    params = list(net.parameters()) + (list(proj.parameters()) if proj is not None else [])
    opt = make_optimizer(cfg, params)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: lr_factor(cfg, e))
    scaler = torch.amp.GradScaler(dev.type) if cfg.precision == "fp16" else None
    return Run(cfg, index, train_ds, val_ds, net, teacher, proj, opt, sched, dev, world, rank, scaler=scaler)


def param_dtype(cfg: TrainConfig) -> torch.dtype:
    """The dtype of weights and inputs: float64 for fp64, float32 otherwise (autocast computes in
    bf16 or fp16 inside a step, from float32 weights)."""
    return torch.float64 if cfg.precision == "fp64" else torch.float32


def autocast(cfg: TrainConfig, dev: torch.device):
    """The mixed-precision context of a step (bf16 or fp16 autocast), or none."""
    import contextlib

    if cfg.precision in ("bf16", "fp16"):
        return torch.autocast(dev.type, dtype=torch.bfloat16 if cfg.precision == "bf16" else torch.float16)
    return contextlib.nullcontext()


def resume(run: Run) -> None:
    """Continue from last.pt (refusing another run's folder or changed settings), or clear what a
    first epoch killed before its last.pt left behind."""
    cfg, last_path = run.cfg, run.last_path
    if last_path.exists():
        ck = load_checkpoint(last_path)
        if ck.get("config", {}).get("role") != cfg.role or ck["arch"] != arch_of(cfg, len(run.index.classes)):
            raise CheckpointError(f"{last_path}: a different run (role/architecture) is in {run.out}; "
                                  "use another --out or remove it")
        changed = changed_settings(ck.get("config", {}), cfg)
        if changed:
            raise CheckpointError(f"{last_path} was trained with other settings: " + ", ".join(changed) +
                                  "; resume with the same ones, or train into another --out")
        if run.master:
            _repair_to(run.out, ck["epoch"])
        run.net.load_state_dict(ck["model"])
        run.opt.load_state_dict(ck["optimizer"])
        run.sched.load_state_dict(ck["scheduler"])
        if run.proj is not None and ck.get("projection"):
            run.proj.load_state_dict(ck["projection"])
        if run.scaler is not None and ck.get("scaler"):
            run.scaler.load_state_dict(ck["scaler"])
        run.start, run.best = ck["epoch"], ck["best_metric"]
        if run.master:
            log.info("resuming %s from epoch %d (best top-1 %.1f)", run.out, run.start, run.best)
    elif run.master and run.out.exists():
        _repair_to(run.out, 0)


def wrap_for_steps(run: Run) -> None:
    """The module a step calls: the role's forward (features, hint maps), in DDP over processes,
    compiled where asked; and the loader that feeds it. On CUDA: cuDNN picks the fastest
    convolutions for the run's fixed shapes, and the networks take channels_last_3d."""
    hints = hint_layers(run.cfg.hint) if run.teacher is not None else ()
    step_module = RoleForward(run.net, run.cfg.role, run.proj, run.cfg.mode, hints)
    if run.dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if channels_last(run.cfg, run.dev):
        for m in (run.net, run.teacher):
            if m is not None:
                m.to(memory_format=torch.channels_last_3d)
    if run.world > 1:  # batch statistics over the global batch, as one process would see it
        run.model = nn.parallel.DistributedDataParallel(sync_batchnorm(step_module, run.dev))
    else:
        run.model = step_module
    if run.cfg.compile:
        run.model = torch.compile(run.model)  # the weights stay run.net's: checkpoints are the same
    make_loader(run)


def train_epoch(run: Run, epoch: int, progress=None, max_steps: Optional[int] = None) -> Dict:
    """One epoch of optimiser steps over full global batches. Returns the epoch's sums (loss, CE,
    mimic, correct, n) and its step count; stops after ``max_steps`` steps (for tests of kills)."""
    cfg, dev = run.cfg, run.dev
    full = (lambda t: t.float()) if cfg.precision in ("bf16", "fp16") else (lambda t: t)  # losses in full precision
    run.train_ds.set_epoch(epoch)
    run.batches.set_epoch(epoch)
    nb = len(run.batches)  # full global batches only: every rank sees the same count
    run.net.train()
    if run.proj is not None:
        run.proj.train()
    hints = hint_layers(cfg.hint) if run.teacher is not None else ()
    tot = {"loss": 0.0, "ce": 0.0, "mse": 0.0, "correct": 0, "n": 0, "n_labeled": 0, "steps": 0, "wait": 0.0}
    bar = progress(total=nb, desc=f"{cfg.role} epoch {epoch + 1}/{cfg.epochs}", unit="batch") \
        if (progress and run.master) else None
    batches = iter(run.loader)
    for b in range(nb):
        t_wait = time.perf_counter()
        batch = next(batches)  # the workers have it ready, or this waits for it
        tot["wait"] += time.perf_counter() - t_wait
        run.skipped.update(batch.pop("skipped", []))
        y = batch["label"].to(dev, non_blocking=True)
        labeled = y >= 0  # --unlabeled clips (label -1) take the mimic terms only
        x = to_device(batch["flow" if cfg.role == "teacher" else "rgb"], run)
        with autocast(cfg, dev):
            logits, f_rgb, maps_rgb = run.model(x)
            if run.teacher is not None:
                with torch.no_grad():
                    flow = to_device(batch["flow"], run)
                    f_flow, maps_flow = run.teacher.forward_flow_features_and_maps(flow, hints)
                    t_logits = run.teacher.forward_head(f_flow) if cfg.kd > 0 else None
                loss, ce, mse = distillation_loss(
                    full(logits),
                    y,
                    full(f_rgb),
                    full(f_flow),
                    cfg.alpha,
                    cfg.mode,
                    cfg.mimic,
                    maps=[(full(a), full(b)) for a, b in zip(maps_rgb, maps_flow)],
                    labeled=labeled,
                    kd=(cfg.kd, cfg.kd_temperature, full(t_logits)) if t_logits is not None else None,
                )
            else:
                loss = ce = F.cross_entropy(full(logits), y)
                mse = torch.zeros((), device=dev)
        if not torch.isfinite(loss):
            raise FtsError(f"{cfg.role}: the loss became {loss.item()} at epoch {epoch + 1}, step {b + 1}; "
                           f"lower --lr (now {cfg.lr}) or --alpha (now {cfg.alpha}); the last good epoch is in "
                           f"{run.last_path}")
        run.opt.zero_grad(set_to_none=True)
        if run.scaler is not None:  # fp16: scaled loss, gradients unscaled before clipping
            run.scaler.scale(loss).backward()
            run.scaler.unscale_(run.opt)
        else:
            loss.backward()  # under DDP, gradients are averaged over processes here
        if cfg.clip_grad:
            torch.nn.utils.clip_grad_norm_(run.params, cfg.clip_grad)
        if run.scaler is not None:
            run.scaler.step(run.opt)
            run.scaler.update()
        else:
            run.opt.step()
        n, n_lab = len(y), int(labeled.sum())
        for key, v in (("loss", loss.item() * n), ("ce", ce.item() * n_lab), ("mse", mse.item() * n),
                       ("correct", int((logits.argmax(1) == y)[labeled].sum())), ("n", n), ("n_labeled", n_lab),
                       ("steps", 1)):
            tot[key] += v
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{tot['loss'] / tot['n']:.3f}",
                            acc=f"{100 * tot['correct'] / max(tot['n_labeled'], 1):.1f}")
        if max_steps is not None and tot["steps"] >= max_steps:
            break
    if bar is not None:
        bar.close()
    return tot


class EpochBatches(torch.utils.data.Sampler):
    """The global batches of an epoch in an order drawn from (seed, epoch), full batches only, each
    process's share of each as ``(epoch, index)`` keys: a clip is a function of those alone, so the
    batches are the same with any number of DataLoader workers, and a resumed run meets the same."""

    def __init__(self, n: int, batch_size: int, world: int, rank: int, seed: int):
        self.n, self.batch_size, self.world, self.rank, self.seed, self.epoch = n, batch_size, world, rank, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // self.batch_size

    def __iter__(self):
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1000 + self.epoch)).tolist()
        per = self.batch_size // self.world
        for b in range(len(self)):
            lo = b * self.batch_size + self.rank * per
            yield [(self.epoch, i) for i in order[lo:lo + per]]


def make_loader(run: Run) -> None:
    """The training DataLoader: clips decoded in worker processes (persistent, prefetching,
    pinned memory on CUDA) or in this one (``--workers 0``)."""
    from .data import collate

    workers = data_workers(run.cfg)
    run.batches = EpochBatches(len(run.train_ds), run.cfg.batch_size, run.world, run.rank, run.cfg.seed)
    run.loader = torch.utils.data.DataLoader(
        run.train_ds, batch_sampler=run.batches, num_workers=workers, collate_fn=collate,
        persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
        pin_memory=run.dev.type == "cuda")


def channels_last(cfg: TrainConfig, dev: torch.device) -> bool:
    return cfg.channels_last if cfg.channels_last is not None else dev.type == "cuda"


def to_device(x: torch.Tensor, run: Run) -> torch.Tensor:
    """A batch on the run's device, in its dtype and memory format (channels_last_3d on CUDA)."""
    x = x.to(run.dev, param_dtype(run.cfg), non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last_3d) if channels_last(run.cfg, run.dev) else x


def validate(run: Run) -> Dict:
    """Top-1/top-5 and cross-entropy on the validation split (the teacher from its cached flow)."""
    if run.cfg.role == "teacher":
        pv = score(run.net, run.val_ds, "flow", device=run.dev, flow_input=True)
    else:
        pv = score(run.net, run.val_ds, "rgb", device=run.dev)
    m = metrics(pv["probs"], pv["labels"])
    m["loss"] = float(F.nll_loss(torch.log(pv["probs"].clamp_min(1e-12)), pv["labels"]))
    return m


def save_epoch(run: Run, epoch: int, tot: Dict, m: Dict, train_s: float) -> Dict:
    """Record a finished epoch: best.pt where it is the best, the metrics line, last.pt, the curves.

    Args:
        run: the Run.
        epoch: the epoch just trained (0-based).
        tot: its training sums; m: its validation metrics; train_s: its seconds.

    Returns:
        The summary: best_top1, last_top1, epochs, out.
    """
    cfg, out = run.cfg, run.out
    is_best = m["top1"] > run.best
    run.best = max(run.best, m["top1"])
    n, n_lab = max(tot["n"], 1), max(tot.get("n_labeled", tot["n"]), 1)  # CE and accuracy: labeled clips only
    num_classes = len(run.index.classes)
    row = {"epoch": epoch + 1, "lr": run.opt.param_groups[0]["lr"], "train_loss": tot["loss"] / n,
           "train_ce": tot["ce"] / n_lab, "train_mse": tot["mse"] / n, "train_top1": 100 * tot["correct"] / n_lab,
           "val_top1": m["top1"], "val_top5": m["top5"], "val_loss": m["loss"], "chance_top1": 100.0 / num_classes,
           "train_seconds": train_s, "data_wait_seconds": round(tot["wait"], 3),
           "skipped_videos": sorted(set(run.train_ds.unreadable) | run.skipped)}
    ck = make_checkpoint(run.net, cfg.role, cfg.spec, run.index.classes, arch_of(cfg, num_classes), cfg.settings(),
                         optimizer=run.opt.state_dict(), scheduler=run.sched.state_dict(), epoch=epoch + 1,
                         best_metric=run.best, flow={"preset": cfg.flow_preset, "scale": cfg.flow_scale,
                                                                   "camera": cfg.flow_camera,
                                                                   "illumination": cfg.flow_illumination},
                         validation={"top1": m["top1"], "clips": m["n"]},
                         projection=run.proj.state_dict() if run.proj is not None else {},
                         **({"scaler": run.scaler.state_dict()} if run.scaler is not None else {}))
    # best.pt and the metrics line first, last.pt last: last.pt is the commit point of an epoch. A
    # kill before it leaves files ahead of last.pt, which a resume rolls back (_repair_to) and redoes.
    if is_best:
        save_with_bundle(out / "best.pt", ck)
    _append_jsonl(out / "metrics.jsonl", row)
    save_checkpoint(run.last_path, ck)
    plot_curves(out / "metrics.jsonl", out / "curves.png")
    log.info(f"{cfg.role} epoch {epoch + 1}/{cfg.epochs}: loss {row['train_loss']:.3f} train {row['train_top1']:.1f}% "
             f"val top-1 {m['top1']:.1f}% (best {run.best:.1f}%) {train_s:.0f}s")
    return {"best_top1": run.best, "last_top1": m["top1"], "epochs": epoch + 1, "out": str(out)}


def _fit(cfg: TrainConfig, resume_run: bool, progress, stop_after_steps: Optional[int], world: int, rank: int) -> Dict:
    run = build_run(cfg, world, rank, progress)
    if resume_run:
        resume(run)
    elif run.master and run.out.exists() and not run.last_path.exists():
        _repair_to(run.out, 0)
    wrap_for_steps(run)
    summary, steps = {}, 0
    for epoch in range(run.start, cfg.epochs):
        t0 = time.perf_counter()
        left = None if stop_after_steps is None else stop_after_steps - steps
        tot = train_epoch(run, epoch, progress, max_steps=left)
        steps += tot["steps"]
        if stop_after_steps is not None and steps >= stop_after_steps:
            return {"stopped_at_step": steps, "epoch": epoch}  # as a kill would: nothing of this epoch kept
        run.sched.step()
        train_s = time.perf_counter() - t0
        if run.master:
            summary = save_epoch(run, epoch, tot, validate(run), train_s)
    if run.master and not summary and run.last_path.exists():
        ck = load_checkpoint(run.last_path)  # nothing left to train: the summary the last epoch gave
        last = [r for r in read_jsonl(run.out / "metrics.jsonl") if r.get("epoch") == ck["epoch"]]
        summary = {"best_top1": ck["best_metric"], "epochs": ck["epoch"], "out": str(run.out),
                   **({"last_top1": last[-1]["val_top1"]} if last else {})}
    return summary


def _repair_to(out: Path, epoch: int) -> None:
    """Roll a run folder back to its last committed epoch (last.pt): drop metrics lines of later
    epochs and temporaries a kill left behind; a best.pt from a later epoch is redone with it."""
    for tmp in [*out.glob(".*.tmp"), *out.glob(".*.commit")]:  # what a kill in a write left
        tmp.unlink()
    m = out / "metrics.jsonl"
    if m.exists():
        rows = read_jsonl(m)
        keep = [r for r in rows if r.get("epoch", 0) <= epoch]
        if len(keep) != len(rows) or len(m.read_text().splitlines()) != len(rows):
            atomic_write_text(m, "".join(json.dumps(r) + "\n" for r in keep))
    best = out / "best.pt"
    if best.exists():
        try:
            b = load_checkpoint(best)
        except CheckpointError:
            b = None
        if b is None or b.get("epoch", 0) > epoch:  # from an epoch that will be trained again
            best.unlink()
            (out / "best.json").unlink(missing_ok=True)


class RunLock:
    """An exclusive lock on a run folder for as long as a training writes to it; a second writer is
    refused with the name of the first. The operating system releases it when the process dies."""

    def __init__(self, out: Path):
        self.path = Path(out) / ".lock"
        self.f = None

    def __enter__(self):
        import fcntl

        if self.path.parent.exists() and not self.path.parent.is_dir():
            raise UsageError(f"--out {self.path.parent}: is a file, not a run folder")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(self.path, "a+")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.f.seek(0)
            holder = self.f.read().strip() or "another process"
            self.f.close()
            raise FtsError(f"{self.path.parent} is in use by another training run ({holder}); wait for it or "
                           "choose another --out")
        self.f.seek(0)
        self.f.truncate()
        self.f.write(f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}")
        self.f.flush()
        return self

    def __exit__(self, *exc):
        import fcntl

        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def _append_jsonl(path: Path, row: dict):
    """Append one line; the log survives a crash (flushed and fsynced line by line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path) -> List[dict]:
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass  # a line cut by a crash
    return rows


def plot_curves(jsonl, png):
    from .plots import curves_png

    # after a resume the log holds the re-run epochs again: keep the last line of each epoch
    by_epoch = {r["epoch"]: r for r in read_jsonl(jsonl)}
    if by_epoch:
        curves_png([by_epoch[e] for e in sorted(by_epoch)], f"{Path(jsonl).parent.name}: training curves", png)
