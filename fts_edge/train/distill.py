"""The distillation of FTSnet: CE(P_rgb, T) + alpha * MSE(F_rgb, F_flow).

F are the pooled features before each network's classifier. The teacher is frozen (eval mode,
no gradients) and its features are detached, as in MARS. Where the widths differ, a linear
projection maps the student's features to the teacher's (trained with the student, not exported).
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import MIMICS


def _sum_over_processes(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over the processes of a DistributedDataParallel run, with gradients (each
    process's backward gets the gradient of every process's loss with respect to its own
    clips, as SyncBatchNorm does); ``t`` itself in one process."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return t
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(t)


def standardise(f: torch.Tensor, eps: float = 1e-5, across_processes: bool = True) -> torch.Tensor:
    """Each feature dimension z-scored over the batch (N x D). Under DistributedDataParallel (and
    ``across_processes``) the batch is the global one: the mean and the (biased) variance are taken
    over every process's clips, two-pass as in one process, so N processes of B clips equal one
    process of N * B. Every process must call it then; ``across_processes=False`` keeps it local."""
    total = _sum_over_processes if across_processes else (lambda t: t)
    n = total(torch.tensor(float(len(f)), dtype=f.dtype, device=f.device))
    if n < 2:
        raise ValueError("the correlation mimic needs batches of at least 2 clips")
    mean = total(f.sum(0)) / n
    centred = f - mean
    var = total((centred * centred).sum(0)) / n
    return centred / (var.sqrt() + eps)


def mimic_term(f_rgb: torch.Tensor, f_flow: torch.Tensor, mimic: str = "mse") -> torch.Tensor:
    """The mimic loss. "mse": the paper's ||F_rgb - F_flow||^2 (mean over the batch and dims).
    "correlation": the MSE between the two feature sets each z-scored over the batch, which is
    2 * (1 - the mean per-dimension correlation across clips). Unlike MSE it cannot be lowered by
    giving every clip the teacher's mean feature (see ``mimic_fit``): only following the teacher's
    variation from clip to clip lowers it. Under DistributedDataParallel its statistics are those of
    the global batch (``standardise``), so a torchrun run equals one process of the same batch."""
    if mimic == "mse":
        return F.mse_loss(f_rgb, f_flow.detach())
    if mimic == "correlation":
        return F.mse_loss(standardise(f_rgb), standardise(f_flow.detach()))
    raise ValueError(f"unknown mimic {mimic!r} ({', '.join(MIMICS)})")


def hint_term(map_rgb: torch.Tensor, map_flow: torch.Tensor, mimic: str = "mse") -> torch.Tensor:
    """The mimic on an intermediate block's feature maps (N, C, T, H, W) (``--hint``): every
    position of every clip is a sample of C channels, so "correlation" z-scores each channel over
    the batch and the positions. The teacher sees T-1 flow frames where the student sees T RGB
    frames; where that leaves the maps' sizes apart the student's is average-pooled to the
    teacher's."""
    if map_rgb.dim() != 5 or map_flow.dim() != 5 or map_rgb.shape[:2] != map_flow.shape[:2]:
        raise ValueError(f"the hint needs two feature maps (N, C, T, H, W) of the same N and C (the student "
                         f"at the teacher's width), got {tuple(map_rgb.shape)} and {tuple(map_flow.shape)}")
    if map_rgb.shape[2:] != map_flow.shape[2:]:
        map_rgb = F.adaptive_avg_pool3d(map_rgb, map_flow.shape[2:])

    def flat(m):
        return m.movedim(1, -1).reshape(-1, m.shape[1])

    return mimic_term(flat(map_rgb), flat(map_flow), mimic)


def kd_term(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Knowledge distillation (Hinton, Vinyals, Dean 2015): the KL divergence from the teacher's
    class probabilities to the student's, both softened at ``temperature``, times temperature^2 so
    its gradients keep their size as the temperature changes; the mean over the clips. It needs no
    label, so it teaches on ``--unlabeled`` clips what the mimic terms cannot: the classifier."""
    t = float(temperature)
    return F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(teacher_logits.detach() / t, 1),
                    reduction="batchmean", log_target=True) * (t * t)


def distillation_loss(logits: torch.Tensor, target: torch.Tensor, f_rgb: torch.Tensor, f_flow: torch.Tensor,
                      alpha: float, mode: str = "ftsnet", mimic: str = "mse", maps=None,
                      labeled: Optional[torch.Tensor] = None, kd: Optional[Tuple[float, float, torch.Tensor]] = None):
    """Returns (loss, ce, mse); mse is always the plain feature MSE (what the logs compare), the
    loss uses ``mimic_term(mimic)``. mode "ftsnet": CE + alpha * mimic. mode "mers" (MARS's pure
    mimic ablation): the backbone learns from the mimic term alone; the classifier learns CE on
    detached features (the caller passes logits computed from ``f_rgb.detach()``). ``maps``, (student,
    teacher) pairs of feature maps, add a ``hint_term`` each to the mimic at the same weight.

    Args:
        logits, target: the student's logits and the labels.
        f_rgb, f_flow: the student's (projected) and the teacher's pooled features.
        alpha: the mimic's weight.
        mode: ftsnet or mers.
        mimic: mse or correlation.
        maps: (student, teacher) feature-map pairs of the hint, or None.
        labeled: a mask of the clips with a label (``--unlabeled`` clips have none): the CE is
            theirs alone (0 for a batch without any), the mimic terms every clip's.
        kd: (weight, temperature, the teacher's logits), or None: adds weight * kd_term, on every
            clip, to the loss of either mode.
    """
    term = mimic_term(f_rgb, f_flow, mimic)
    for map_rgb, map_flow in maps or ():
        term = term + hint_term(map_rgb, map_flow.detach(), mimic)
    mse = term if mimic == "mse" else F.mse_loss(f_rgb.detach(), f_flow.detach())
    if labeled is not None and not bool(labeled.all()):
        ce = F.cross_entropy(logits[labeled], target[labeled]) if bool(labeled.any()) else logits.sum() * 0.0
    else:
        ce = F.cross_entropy(logits, target)
    soft = kd[0] * kd_term(logits, kd[2], kd[1]) if kd is not None and kd[0] > 0 else 0.0
    if mode == "ftsnet":
        return ce + alpha * term + soft, ce, mse
    if mode == "mers":
        return ce + term + soft, ce, mse
    raise ValueError(f"unknown distillation mode {mode!r} (ftsnet, mers)")


class FeatureProjection(nn.Module):
    """Identity when the widths agree, else a linear map from student to teacher width."""

    def __init__(self, d_student: int, d_teacher: int):
        super().__init__()
        self.proj: Optional[nn.Linear] = nn.Linear(d_student, d_teacher) if d_student != d_teacher else None

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return f if self.proj is None else self.proj(f)


def mimic_fit(f_student: torch.Tensor, f_teacher: torch.Tensor) -> Dict[str, float]:
    """How much of the teacher's feature variation the student reproduces over a set of clips
    (N x D features each, the student's already projected to the teacher's width).

    ``mse`` is the mimic loss. ``r2`` is 1 - mse / (the teacher's variance across clips): a student
    that gives every clip the teacher's mean feature scores 0, though its mse can look small,
    because that mean carries much of the teacher's feature energy. ``var_ratio`` is the student's
    variance across clips over the teacher's: near 0 when the student has collapsed onto one
    feature vector, where its classifier cannot tell clips apart and it sits at chance. ``corr``
    is the mean per-dimension correlation across clips, blind to scale and offset: what the
    correlation mimic trains, so for its students r2 and var_ratio say little (their feature scale
    is free) and corr is the measure."""
    fs, ft = f_student.double(), f_teacher.double()
    if fs.shape != ft.shape or fs.dim() != 2 or len(fs) < 2:
        raise ValueError(f"mimic_fit needs two N x D feature sets with N >= 2, got {tuple(fs.shape)} and "
                         f"{tuple(ft.shape)}")
    var_t = float(ft.var(0, unbiased=False).mean())
    var_s = float(fs.var(0, unbiased=False).mean())
    mse = float(((fs - ft) ** 2).mean())
    zs, zt = (standardise(f, 1e-12, across_processes=False) for f in (fs, ft))
    corr = float((zs * zt).mean())
    return {"mse": mse, "r2": 1.0 - mse / max(var_t, 1e-12), "var_ratio": var_s / max(var_t, 1e-12),
            "corr": corr, "teacher_var": var_t, "clips": int(len(fs))}
