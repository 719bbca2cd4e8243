"""Checkpoints and bundle metadata. Written atomically; loaded with ``weights_only=True``.

A checkpoint is one dict: model, optimizer, scheduler, epoch (completed), best_metric, config,
clip_spec, classes, arch (how to rebuild the network), role, flow settings and tool versions.
Everything but the tensors is plain Python types, so ``torch.load(weights_only=True)`` reads it.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

import torch

from ..core.artifacts import atomic_write_bytes, sha256_file
from ..core.errors import CheckpointError, first_line
from ..data.clipspec import FLOW_SCALE, ClipSpec
from ..device.bundle import commit_artifact, differing_keys, versions, write_metadata  # noqa: F401  (the bundle API, re-exported)


def save_checkpoint(path, ckpt: dict) -> Path:
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return atomic_write_bytes(path, buf.getvalue())


def save_with_bundle(path, ckpt: dict) -> Path:
    """A checkpoint and its bundle (NAME.json) committed together (bundle.commit_artifact): a
    crash never leaves a best.pt beside another epoch's best.json."""
    import hashlib

    buf = io.BytesIO()
    torch.save(ckpt, buf)
    blob = buf.getvalue()
    meta = {**bundle_metadata(ckpt), "checkpoint_sha256": hashlib.sha256(blob).hexdigest()}
    return commit_artifact(path, blob, meta, meta_path=Path(path).with_suffix(".json"))


def make_checkpoint(net, role: str, spec: ClipSpec, classes, arch: dict, config: Optional[dict] = None,
                    **extra) -> dict:
    """A checkpoint dict as every reader expects it: weights, architecture, role, ClipSpec, class
    names, the settings that made it and the tools' versions; ``extra`` adds training state
    (optimizer, scheduler, epoch, ...).

    Args:
        net: the network (its state dict is saved).
        role: teacher, rgb or student.
        spec: the ClipSpec it trains on.
        classes: the class names, in output order.
        arch: how to rebuild it (model, width, num_classes, in_channels, window).
        config: the settings that made it.

    Returns:
        The checkpoint dict.
    """
    return {"model": net.state_dict(), "arch": dict(arch), "role": role, "clip_spec": spec.to_dict(),
            "classes": list(classes), "config": dict(config or {}), "versions": versions(), **extra}


def safe_load(path, what: str = "fts-edge checkpoint"):
    """torch.load with weights_only=True (no pickle is executed); every failure is one CheckpointError."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such file (wanted: {what})")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{p}: not a readable {what} ({type(e).__name__}: {first_line(e, 160)})")


def load_checkpoint(path) -> dict:
    p = Path(path)
    ckpt = safe_load(p)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "arch" not in ckpt:
        raise CheckpointError(f"{p}: not an fts-edge checkpoint (no model/arch entries)")
    return ckpt


def build_from_checkpoint(ckpt: dict, path="checkpoint"):
    """Rebuild the network a checkpoint describes and load its weights (strictly)."""
    from .models import FlowTeacher, create_model

    arch = ckpt["arch"]
    try:
        net = create_model(arch["model"], arch["num_classes"], in_channels=arch["in_channels"], width=arch["width"],
                           window=arch.get("window"))
        if ckpt.get("role") == "teacher":
            spec = ClipSpec.from_dict(ckpt["clip_spec"])
            from ..flow.tvl1 import TVL1
            fl = ckpt.get("flow", {})
            tv = TVL1.preset(fl.get("preset", "fast"), camera=fl.get("camera", "none"),
                             illumination=fl.get("illumination", "none"))
            scale = ckpt.get("flow", {}).get("scale", FLOW_SCALE)
            net = FlowTeacher(net, spec.mean, spec.std, flow_scale=scale, tvl1=tv)
        net.load_state_dict(ckpt["model"], strict=True)
    except (RuntimeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: weights do not fit the architecture it names "
                              f"({arch.get('model')}, width {arch.get('width')}): {first_line(e, 200)}")
    return net.eval()


def bundle_metadata(ckpt: dict, ckpt_path=None) -> dict:
    """The bundle metadata every later stage reads: classes, ClipSpec, backbone, provenance."""
    meta = {"classes": ckpt["classes"], "clip_spec": ckpt["clip_spec"], "arch": ckpt["arch"],
            "role": ckpt.get("role"), "input_names": ["clip"], "output_names": ["logits"],
            "versions": versions()}
    cfg = ckpt.get("config") or {}
    from ..data.datasets import DATASET_SETTINGS

    meta["dataset"] = {k: cfg.get(k) for k in DATASET_SETTINGS}  # enough to rebuild the split exactly
    if ckpt.get("validation"):  # what this epoch scored on that split: later stages hold the artifact to it
        meta["validation"] = dict(ckpt["validation"])
    if ckpt_path is not None:
        meta["checkpoint_sha256"] = sha256_file(ckpt_path)
    return meta


def checkpoint_bundle(path) -> dict:
    """A checkpoint's bundle, from the checkpoint itself; a ``best.json`` beside it (what training
    writes with ``best.pt``) must be that bundle, or the load is refused naming the keys."""
    p = Path(path)
    ck = load_checkpoint(p)
    meta = bundle_metadata(ck, p)
    side = p.with_suffix(".json")
    if side.is_file():
        import json

        try:
            saved = json.loads(side.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{side}: not readable bundle metadata ({type(e).__name__})") from None
        keys = differing_keys({k: saved.get(k) for k in CHECKPOINT_KEYS}, {k: meta.get(k) for k in CHECKPOINT_KEYS})
        if keys:
            raise CheckpointError(f"{p}: {side.name} beside it does not describe it (it differs on "
                                  f"{', '.join(keys[:6])}); "
                                  "remove the stale JSON or train again")
    return meta


# What a best.json beside a checkpoint must agree on with the checkpoint itself.
CHECKPOINT_KEYS = ("classes", "clip_spec", "arch", "role", "checkpoint_sha256")


def load_teacher(path, spec: Optional[ClipSpec] = None, classes: Optional[list] = None,
                 flag: str = "--teacher") -> dict:
    """A flow-teacher checkpoint, or one line saying why ``path`` cannot serve as the teacher: not
    a teacher, or trained on other clips (``spec``) or other classes than the network beside it."""
    ck = load_checkpoint(path)
    if ck.get("role") != "teacher":
        raise CheckpointError(f"{path}: {flag} needs a flow-teacher checkpoint (this one's role is {ck.get('role')!r})")
    # the teacher reads flow, not the RGB pixels the student's rgb_illumination rescales: that may differ
    if spec is not None and ClipSpec.from_dict(ck["clip_spec"]).replace(
            rgb_illumination=spec.rgb_illumination) != spec:
        raise CheckpointError(f"{path}: the teacher was trained on other clips ({ck['clip_spec']}) than the student's")
    if classes is not None and list(ck["classes"]) != list(classes):
        raise CheckpointError(f"{path}: the teacher knows {len(ck['classes'])} classes "
                              f"({', '.join(ck['classes'][:4])}...), the student {len(classes)}; train them on one "
                              "dataset")
    return ck
