"""TV-L1 optical flow written as network layers (Zach, Pock, Bischof 2007; as in TVNet and
Representation Flow), OpenCV's reference DualTVL1, and flow pictures.

Each warp linearises brightness constancy around the current flow (the image is warped with
``grid_sample`` and its gradient with it); each iteration is a thresholding step on the data
term (a residual update of the flow) followed by the dual update of the TV term, with gradient
and divergence as fixed finite-difference convolutions. A coarse-to-fine pyramid carries large
motions, which single-scale TV-L1 cannot follow beyond about 2 px.

Conventions: frames are in [0, 255]; flow is in pixels, channel 0 = x (right), 1 = y (down),
and maps a pixel of the first frame to where it is in the second: I1(x + u(x)) = I0(x).

TV-L1 assumes brightness constancy and sees a moving camera as motion. Two options address what
breaks it: ``illumination`` prepares the frames ("normalize": each frame brought to the pair's mean
and contrast, which cancels a global gain; "structure_texture": Wedel, Pock, Zach, Bischof and
Cremers 2009, the frame less 95% of its ROF-smoothed structure, which keeps the texture that
lighting changes little) and ``camera`` removes the camera's motion from each flow field ("median":
its median vector, the translation of Simonyan and Zisserman 2014; "affine": an affine motion fitted
by iteratively reweighted least squares with the largest residuals left out, in the spirit of
Wang and Schmid 2013's camera model).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.clipspec import FLOW_CAMERA, FLOW_ILLUMINATION, TVL1_PRESETS

_GREY = (0.299, 0.587, 0.114)  # RGB -> luma, as OpenCV's COLOR_RGB2GRAY


def to_grey(x: torch.Tensor) -> torch.Tensor:
    """(N, C, ...) RGB or grey -> (N, 1, ...) grey."""
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise ValueError(f"frames need 1 or 3 channels, got {x.shape[1]}")
    w = x.new_tensor(_GREY).view(1, 3, *([1] * (x.dim() - 2)))
    return (x * w).sum(1, keepdim=True)


class TVL1(nn.Module):
    """Batched, differentiable TV-L1 optical flow.

    Parameters follow OpenCV's ``DualTVL1OpticalFlow`` (tau, lambda, theta, epsilon, warps,
    scales, scale step, a 5x5 median filter of the flow at each warp). ``iterations`` is the
    number of unrolled inner iterations per warp; with ``epsilon > 0`` the inner loop stops early
    once the flow changes by less than epsilon (RMS, worst pair of the batch), as OpenCV does.
    ``learnable=True`` makes tau, lambda, theta and the difference kernels trainable (TVNet).
    Reach: the coarsest level sees motion shrunk by ``scale_step ** (scales - 1)``, and each level
    follows about 2 px; OpenCV's default pyramid (5 scales at 0.8) thus reaches about 5 px. The
    ``fast`` preset halves at each of its 3 levels and reaches about 8 px.

    forward(a, b) with a, b of shape (N, C, H, W) -> flow (N, 2, H, W);
    forward(clip) with clip (N, C, T, H, W) -> flow (N, 2, T-1, H, W) of consecutive pairs.
    """

    def __init__(self, tau: float = 0.25, lambda_: float = 0.15, theta: float = 0.3, epsilon: float = 0.01,
                 warps: int = 5, iterations: int = 30, scales: int = 5, scale_step: float = 0.8,
                 median: int = 5, min_size: int = 16, check_every: int = 5, interpolation: str = "bicubic",
                 learnable: bool = False, camera: str = "none", illumination: str = "none"):
        super().__init__()
        if camera not in FLOW_CAMERA or illumination not in FLOW_ILLUMINATION:
            raise ValueError(f"camera must be one of {FLOW_CAMERA}, illumination one of {FLOW_ILLUMINATION}")
        self.camera, self.illumination = camera, illumination
        if warps < 1 or iterations < 1 or scales < 1 or not 0 < scale_step < 1:
            raise ValueError("TVL1 needs warps, iterations, scales >= 1 and 0 < scale_step < 1")
        if median not in (0, 1, 3, 5):
            raise ValueError("median must be 0/1 (off), 3 or 5")
        self.warps, self.iterations, self.scales, self.scale_step = warps, iterations, scales, scale_step
        self.epsilon, self.median, self.min_size, self.check_every = epsilon, median, min_size, check_every
        if interpolation not in ("bilinear", "bicubic"):
            raise ValueError("interpolation must be bilinear or bicubic")
        self.interpolation = interpolation
        self.learnable = learnable
        vals = {"tau": tau, "lambda_": lambda_, "theta": theta}
        for k, v in vals.items():
            t = torch.tensor(float(v))
            if learnable:
                setattr(self, k, nn.Parameter(t))
            else:
                self.register_buffer(k, t, persistent=False)
        # Difference kernels (as in TVNet, learnable if asked): forward differences for the flow's
        # gradient, backward for the divergence, centred for the image gradient.
        fwd = torch.tensor([-1.0, 1.0])
        cen = torch.tensor([-0.5, 0.0, 0.5])
        if learnable:
            self.k_fwd, self.k_cen = nn.Parameter(fwd), nn.Parameter(cen)
        else:
            self.register_buffer("k_fwd", fwd, persistent=False)
            self.register_buffer("k_cen", cen, persistent=False)

    @classmethod
    def fast(cls, **kw) -> "TVL1":
        """The teacher's preset: fewer scales, warps and iterations, chosen by measurement on the
        motion dataset and Middlebury pairs (see ``fts-edge bench flow``)."""
        p = dict(warps=2, iterations=15, scales=3, scale_step=0.5, epsilon=0.0, median=3)
        p.update(kw)
        return cls(**p)

    @classmethod
    def preset(cls, name: str = "fast", camera: str = "none", illumination: str = "none") -> "TVL1":
        """The solver a preset names: ``fast`` (the teacher's) or ``default`` (OpenCV's settings),
        with the camera and illumination options. Checkpoints, training, benchmarks and flow
        pictures all build their solver here."""
        if name not in TVL1_PRESETS:
            raise ValueError(f"TV-L1 preset {name!r}: choose one of {', '.join(TVL1_PRESETS)}")
        kw = {"camera": camera, "illumination": illumination}
        return cls.fast(**kw) if name == "fast" else cls(**kw)

    def extra_repr(self) -> str:
        text = (f"tau={float(self.tau):.3g}, lambda={float(self.lambda_):.3g}, theta={float(self.theta):.3g}, "
                f"warps={self.warps}, iterations={self.iterations}, scales={self.scales}, "
                f"scale_step={self.scale_step}, median={self.median}, epsilon={self.epsilon}")
        # the options only where set: the solver's text keys the flow store, unchanged without them
        if self.camera != "none":
            text += f", camera={self.camera}"
        if self.illumination != "none":
            text += f", illumination={self.illumination}"
        return text

    # -- robustness ------------------------------------------------------------------------------
    def _rof(self, img: torch.Tensor, theta: float = 0.125, iterations: int = 50) -> torch.Tensor:
        """The structure of ``img`` (values about 0..1): ROF (TV) denoising by Chambolle's dual
        projection, the smooth part that lighting changes."""
        px, py = torch.zeros_like(img), torch.zeros_like(img)
        for _ in range(iterations):
            gx, gy = self._grad_fwd(self._div(px, py) - img / theta)
            norm = 1.0 + 0.25 * torch.sqrt(gx * gx + gy * gy)
            px, py = (px + 0.25 * gx) / norm, (py + 0.25 * gy) / norm
        return img - theta * self._div(px, py)

    def _prepare(self, i0: torch.Tensor, i1: torch.Tensor):
        """The grey frames as the data term sees them, after the illumination option."""
        if self.illumination == "none":
            return i0, i1
        if self.illumination == "structure_texture":
            i0, i1 = i0 - 0.95 * 255.0 * self._rof(i0 / 255.0), i1 - 0.95 * 255.0 * self._rof(i1 / 255.0)
        dims = (1, 2, 3)
        m0, m1 = i0.mean(dims, keepdim=True), i1.mean(dims, keepdim=True)
        s0, s1 = i0.std(dims, keepdim=True).clamp_min(1e-3), i1.std(dims, keepdim=True).clamp_min(1e-3)
        # both to the pair's mean and contrast (of the originals for normalize), so lambda keeps its scale
        mean, std = (m0 + m1) / 2, (s0 + s1) / 2
        if self.illumination == "structure_texture":
            mean = torch.full_like(mean, 127.5)
            std = torch.full_like(std, 40.0)
        return (i0 - m0) / s0 * std + mean, (i1 - m1) / s1 * std + mean

    def _remove_camera(self, u: torch.Tensor) -> torch.Tensor:
        """The flow less the camera's motion, after the camera option: its median vector, or an
        affine field fitted to it robustly (three reweighted least-squares rounds, each leaving out
        the vectors whose residual is over twice the median residual: the moving objects)."""
        if self.camera == "none":
            return u
        n, _, h, w = u.shape
        flat = u.reshape(n, 2, h * w)
        if self.camera == "median":
            return u - flat.median(dim=2).values.view(n, 2, 1, 1)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, dtype=u.dtype, device=u.device),
                                torch.linspace(-1, 1, w, dtype=u.dtype, device=u.device), indexing="ij")
        basis = torch.stack([torch.ones_like(xs), xs, ys], -1).reshape(1, h * w, 3).expand(n, -1, -1)
        target = flat.transpose(1, 2)  # (n, hw, 2)
        weight = torch.ones(n, h * w, 1, dtype=u.dtype, device=u.device)
        for _ in range(3):
            a = basis * weight
            coef = torch.linalg.lstsq(a.transpose(1, 2) @ basis + 1e-6 * torch.eye(3, dtype=u.dtype, device=u.device),
                                      a.transpose(1, 2) @ target).solution  # (n, 3, 2)
            resid = (target - basis @ coef).norm(dim=2, keepdim=True)
            weight = (resid <= 2 * resid.median(dim=1, keepdim=True).values + 1e-3).to(u.dtype)
        return u - (basis @ coef).transpose(1, 2).reshape(n, 2, h, w)

    # -- finite differences ------------------------------------------------------------------
    def _grad_fwd(self, u: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Forward differences, zero on the last column/row (Chambolle's discretisation)."""
        a, b = self.k_fwd[0], self.k_fwd[1]
        ux = F.pad(b * u[..., :, 1:] + a * u[..., :, :-1], (0, 1))
        uy = F.pad(b * u[..., 1:, :] + a * u[..., :-1, :], (0, 0, 0, 1))
        return ux, uy

    def _div(self, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
        """Backward differences: the negative adjoint of ``_grad_fwd``."""
        b, a = self.k_fwd[1], -self.k_fwd[0]
        dx = b * px - a * F.pad(px[..., :, :-1], (1, 0))
        dy = b * py - a * F.pad(py[..., :-1, :], (0, 0, 1, 0))
        return dx + dy

    def _grad_centred(self, img: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        k = self.k_cen
        p = F.pad(img, (1, 1, 1, 1), mode="replicate")
        gx = k[0] * p[..., 1:-1, :-2] + k[1] * p[..., 1:-1, 1:-1] + k[2] * p[..., 1:-1, 2:]
        gy = k[0] * p[..., :-2, 1:-1] + k[1] * p[..., 1:-1, 1:-1] + k[2] * p[..., 2:, 1:-1]
        return gx, gy

    @staticmethod
    def _median(u: torch.Tensor, k: int) -> torch.Tensor:
        n, c, h, w = u.shape
        p = F.pad(u, (k // 2,) * 4, mode="replicate")
        patches = F.unfold(p.reshape(n * c, 1, h + k - 1, w + k - 1), k)  # (n*c, k*k, h*w)
        return patches.median(dim=1).values.reshape(n, c, h, w)

    def _warp(self, img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """Sample img at x + flow(x) (bicubic as OpenCV's solver, or bilinear; border replicated)."""
        n, _, h, w = flow.shape
        ys, xs = torch.meshgrid(torch.arange(h, device=flow.device, dtype=flow.dtype),
                                torch.arange(w, device=flow.device, dtype=flow.dtype), indexing="ij")
        gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
        gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
        return F.grid_sample(img, torch.stack((gx, gy), -1), mode=self.interpolation, padding_mode="border",
                             align_corners=True)

    # -- one scale ---------------------------------------------------------------------------
    def _solve(self, i0: torch.Tensor, i1: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        tau, lam, theta = self.tau, self.lambda_, self.theta
        lt = lam * theta
        taut = tau / theta
        i1x, i1y = self._grad_centred(i1)
        i1_stack = torch.cat((i1, i1x, i1y), 1)
        px = torch.zeros_like(u)
        py = torch.zeros_like(u)
        eps2 = self.epsilon ** 2
        for _ in range(self.warps):
            if self.median > 1:
                u = self._median(u, self.median)
            warped = self._warp(i1_stack, u)
            i1w, ig = warped[:, :1], warped[:, 1:]  # ig: (N, 2, H, W) = warped (Ix, Iy)
            g2 = (ig * ig).sum(1, keepdim=True)
            rho_c = i1w - (ig * u).sum(1, keepdim=True) - i0
            g2_safe = torch.where(g2 > 1e-9, g2, torch.ones_like(g2))
            for it in range(self.iterations):
                # data term: thresholding step around the linearisation (residual update of u)
                rho = rho_c + (ig * u).sum(1, keepdim=True)
                step = torch.where(rho < -lt * g2, lt * ig,
                                   torch.where(rho > lt * g2, -lt * ig,
                                               torch.where(g2 > 1e-9, -rho / g2_safe * ig, torch.zeros_like(ig))))
                u_new = u + step + theta * self._div(px, py)
                # TV term: dual (projected gradient) update
                ux, uy = self._grad_fwd(u_new)
                ng = 1.0 + taut * torch.sqrt(ux * ux + uy * uy + 1e-12)
                px = (px + taut * ux) / ng
                py = (py + taut * uy) / ng
                check = eps2 > 0 and (it + 1) % self.check_every == 0
                if check:
                    err = ((u_new - u) ** 2).sum(1).mean(dim=(1, 2)).max()
                    u = u_new
                    if float(err) < eps2:
                        break
                else:
                    u = u_new
        return u

    # -- the pyramid -------------------------------------------------------------------------
    def _sizes(self, h: int, w: int):
        sizes = [(h, w)]
        for _ in range(1, self.scales):
            nh, nw = int(round(sizes[-1][0] * self.scale_step)), int(round(sizes[-1][1] * self.scale_step))
            if min(nh, nw) < self.min_size:
                break
            sizes.append((nh, nw))
        return sizes

    def flow_pairs(self, a: torch.Tensor, b: torch.Tensor, init: Optional[torch.Tensor] = None) -> torch.Tensor:
        if a.shape != b.shape or a.dim() != 4:
            raise ValueError(f"TVL1 wants two (N, C, H, W) batches of one shape, got {tuple(a.shape)} and "
                             f"{tuple(b.shape)}")
        dtype = self.k_fwd.dtype  # the module's precision (float32, or float64 after .double())
        i0, i1 = self._prepare(to_grey(a.to(dtype)), to_grey(b.to(dtype)))
        n, _, h, w = i0.shape
        sizes = self._sizes(h, w)
        pyr0, pyr1 = [i0], [i1]
        for (sh, sw) in sizes[1:]:
            pyr0.append(F.interpolate(i0, size=(sh, sw), mode="bilinear", align_corners=False, antialias=True))
            pyr1.append(F.interpolate(i1, size=(sh, sw), mode="bilinear", align_corners=False, antialias=True))
        sh, sw = sizes[-1]
        if init is None:
            u = i0.new_zeros(n, 2, sh, sw)
        else:
            u = _resize_flow(init.to(dtype), sh, sw)
        for level in range(len(sizes) - 1, -1, -1):
            if u.shape[-2:] != pyr0[level].shape[-2:]:
                u = _resize_flow(u, *pyr0[level].shape[-2:])
            u = self._solve(pyr0[level], pyr1[level], u)
        return self._remove_camera(u)

    def forward(self, a: torch.Tensor, b: Optional[torch.Tensor] = None) -> torch.Tensor:
        if b is not None:
            return self.flow_pairs(a, b)
        if a.dim() != 5 or a.shape[2] < 2:
            raise ValueError(f"TVL1 wants a clip (N, C, T, H, W) with T >= 2, or two frame batches; got "
                             f"{tuple(a.shape)}")
        n, c, t, h, w = a.shape
        first = a[:, :, :-1].transpose(1, 2).reshape(n * (t - 1), c, h, w)
        second = a[:, :, 1:].transpose(1, 2).reshape(n * (t - 1), c, h, w)
        flow = self.flow_pairs(first, second)
        return flow.reshape(n, t - 1, 2, h, w).transpose(1, 2)


def _resize_flow(u: torch.Tensor, h: int, w: int) -> torch.Tensor:
    sy, sx = h / u.shape[-2], w / u.shape[-1]
    u = F.interpolate(u, size=(h, w), mode="bilinear", align_corners=False)
    return u * u.new_tensor([sx, sy]).view(1, 2, 1, 1)










