"""The distillation of FTSnet: CE(P_rgb, T) + alpha * MSE(F_rgb, F_flow).

F are the pooled features before each network's classifier. The teacher is frozen (eval mode,
no gradients) and its features are detached, as in MARS. Where the widths differ, a linear
projection maps the student's features to the teacher's (trained with the student, not exported).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

# MARS's value (CE + 50 * MSE on Kinetics), with which every table in the README was measured.
# train/sweep_alpha.py on one development seed (99, 14 epochs) favoured 10 (top-1 60.4 vs 11.2
# for 50, which had not left chance); one seed cannot separate them when how long a network sits at
# chance varies this much between seeds, so the default waits for a sweep over several seeds.
DEFAULT_ALPHA = 50.0


def distillation_loss(logits: torch.Tensor, target: torch.Tensor, f_rgb: torch.Tensor, f_flow: torch.Tensor,
                      alpha: float = DEFAULT_ALPHA, mode: str = "ftsnet"):
    """Returns (loss, ce, mse). mode "ftsnet": CE + alpha * MSE. mode "mers" (MARS's pure mimic
    ablation): the backbone learns from MSE alone; the classifier learns CE on detached features
    (the caller passes logits computed from ``f_rgb.detach()``)."""
    mse = F.mse_loss(f_rgb, f_flow.detach())
    ce = F.cross_entropy(logits, target)
    if mode == "ftsnet":
        return ce + alpha * mse, ce, mse
    if mode == "mers":
        return ce + mse, ce, mse
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
    feature vector, where its classifier cannot tell clips apart and it sits at chance."""
    fs, ft = f_student.double(), f_teacher.double()
    if fs.shape != ft.shape or fs.dim() != 2 or len(fs) < 2:
        raise ValueError(f"mimic_fit needs two N x D feature sets with N >= 2, got {tuple(fs.shape)} and {tuple(ft.shape)}")
    var_t = float(ft.var(0, unbiased=False).mean())
    var_s = float(fs.var(0, unbiased=False).mean())
    mse = float(((fs - ft) ** 2).mean())
    return {"mse": mse, "r2": 1.0 - mse / max(var_t, 1e-12), "var_ratio": var_s / max(var_t, 1e-12),
            "teacher_var": var_t, "clips": int(len(fs))}
