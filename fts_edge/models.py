"""3D networks: R3D-18 and ResNeXt3D-18, and FTSnet's flow teacher (FlowTeacher; the student is a plain ResNet3D on RGB).

One flat file in dependency order: convolutions, blocks, stem, the network, the builders, the
roles. Every network answers ``forward_features(x) -> (N, D)`` and ``forward_head(f) -> logits``;
distillation reads both networks through that interface.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .clipspec import FLOW_SCALE


# -- convolutions ---------------------------------------------------------------------------
class Conv3DSimple(nn.Conv3d):
    """A full 3x3x3 convolution; its shortcut downsamples time and space alike."""

    def __init__(self, in_planes: int, out_planes: int, stride: int = 1, groups: int = 1):
        super().__init__(in_planes, out_planes, kernel_size=3, stride=stride, padding=1,
                         groups=groups, bias=False)

    @staticmethod
    def get_downsample_stride(stride: int):
        return (stride, stride, stride)


class CausalConv3d(nn.Conv3d):
    """A 3D convolution whose output at frame t reads frames t-k+1 .. t only: time is padded on the
    past side (zeros before the first frame), never strided; space is padded and strided as usual.

    ``forward(x)`` runs a clip (N, C, T, H, W) -> (N, C', T, H', W'); ``step(x, past)`` runs one new
    frame (N, C, 1, H, W) with the ``past`` k-1 input frames it needs (N, C, k-1, H, W) and returns
    (output (N, C', 1, H', W'), the next step's past). Stepping a clip frame by frame from zero
    past gives the clip's outputs exactly.
    """

    def __init__(self, in_planes: int, out_planes: int, kernel_size=(3, 3, 3), spatial_stride: int = 1,
                 groups: int = 1):
        kt, kh, kw = kernel_size
        super().__init__(in_planes, out_planes, kernel_size=(kt, kh, kw), stride=(1, spatial_stride, spatial_stride),
                         padding=(0, kh // 2, kw // 2), groups=groups, bias=False)
        self.past = kt - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(nn.functional.pad(x, (0, 0, 0, 0, self.past, 0)) if self.past else x)

    def step(self, x: torch.Tensor, past: torch.Tensor):
        window = torch.cat([past, x], 2)
        return super().forward(window), window[:, :, 1:]


def _bn(c: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(c)


# -- blocks ---------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    """Two 3x3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, cardinality: int = 1, causal: bool = False):
        super().__init__()
        conv = (lambda i, o, s=1: CausalConv3d(i, o, spatial_stride=s)) if causal else Conv3DSimple
        self.conv1 = nn.Sequential(conv(inplanes, planes, stride), _bn(planes), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv(planes, planes), _bn(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + identity)

    def step(self, x, states: List[torch.Tensor]):
        """One frame through the block: ``states`` are its two convolutions' pasts, replaced in place."""
        identity = x if self.downsample is None else self.downsample(x)
        y = _step_sequence(self.conv1, x, states, 0)
        y = _step_sequence(self.conv2, y, states, 1)
        return self.relu(y + identity)


def _step_sequence(seq: nn.Sequential, x: torch.Tensor, states: List[torch.Tensor], i: int) -> torch.Tensor:
    """Run ``seq`` on one frame; its one CausalConv3d steps with ``states[i]`` (replaced)."""
    for m in seq:
        if isinstance(m, CausalConv3d):
            x, states[i] = m.step(x, states[i])
        else:
            x = m(x)
    return x


class ResNeXtBlock(nn.Module):
    """1x1x1 -> grouped 3x3x3 -> 1x1x1 with a residual: the "3D ResNeXt-18" block.

    The inner width is twice the block's width, split into ``cardinality`` groups (32x4d at the
    first stage of a full-width network, as in ResNeXt-50 32x4d).
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, cardinality: int = 32):
        super().__init__()
        inner = planes * 2
        groups = _fit_groups(inner, cardinality)
        self.conv1 = nn.Sequential(nn.Conv3d(inplanes, inner, 1, bias=False), _bn(inner), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(Conv3DSimple(inner, inner, stride, groups=groups), _bn(inner), nn.ReLU(inplace=True))
        self.conv3 = nn.Sequential(nn.Conv3d(inner, planes, 1, bias=False), _bn(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + identity)


def _fit_groups(channels: int, wanted: int) -> int:
    """The largest group count <= wanted that divides channels (keeps narrow widths valid)."""
    g = max(1, min(wanted, channels))
    while channels % g:
        g -= 1
    return g


# -- stem -----------------------------------------------------------------------------------
class BasicStem(nn.Sequential):
    """3x7x7 convolution, stride (1, 2, 2): keeps time, halves space. in_channels 3 (RGB) or 2 (flow)."""

    def __init__(self, in_channels: int = 3, width: int = 64, causal: bool = False):
        conv = (CausalConv3d(in_channels, width, (3, 7, 7), spatial_stride=2) if causal else
                nn.Conv3d(in_channels, width, kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False))
        super().__init__(conv, _bn(width), nn.ReLU(inplace=True))


# -- the network ----------------------------------------------------------------------------
# The residual blocks whose feature maps the student can be asked to follow (``--hint``).
HINT_LAYERS = ("layer1", "layer2", "layer3", "layer4")


def hint_layers(hint: Optional[str]) -> Tuple[str, ...]:
    """``--hint`` as the blocks it names: None -> (), "layer3" -> ("layer3",), "layer2,layer3" ->
    both, in network order. ValueError (one line) for an unknown or repeated block."""
    if not hint:
        return ()
    names = [n.strip() for n in hint.split(",")]
    bad = [n for n in names if n not in HINT_LAYERS]
    if bad or len(set(names)) != len(names):
        raise ValueError(f"hint must be blocks of {', '.join(HINT_LAYERS)}, comma-separated and each once, got {hint!r}")
    return tuple(n for n in HINT_LAYERS if n in names)


class ResNet3D(nn.Module):
    def __init__(self, block, layers: Sequence[int], num_classes: int, in_channels: int = 3,
                 width: float = 1.0, cardinality: int = 32, dropout: float = 0.0, window: Optional[int] = None):
        super().__init__()
        # window: a causal network (CausalConv3d, no temporal striding) whose features are the mean
        # of its last ``window`` frames' outputs; None: the clip network, pooled over the whole clip.
        if window is not None and window < 2:
            raise ValueError(f"a causal network averages its last window >= 2 outputs, got {window}")
        self.window = window
        self.causal = window is not None
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        planes = [max(4, int(round(c * width))) for c in (64, 128, 256, 512)]
        self.in_channels = in_channels
        self.stem = BasicStem(in_channels, planes[0], causal=self.causal)
        self.inplanes = planes[0]
        self.layer1 = self._make_layer(block, planes[0], layers[0], 1, cardinality)
        self.layer2 = self._make_layer(block, planes[1], layers[1], 2, cardinality)
        self.layer3 = self._make_layer(block, planes[2], layers[2], 2, cardinality)
        self.layer4 = self._make_layer(block, planes[3], layers[3], 2, cardinality)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.num_features = planes[3] * block.expansion
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(self.num_features, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block, planes: int, blocks: int, stride: int, cardinality: int):
        downsample = None
        extra = {"causal": True} if self.causal else {}
        if stride != 1 or self.inplanes != planes * block.expansion:
            ds_stride = (1, stride, stride) if self.causal else Conv3DSimple.get_downsample_stride(stride)
            downsample = nn.Sequential(
                nn.Conv3d(self.inplanes, planes * block.expansion, kernel_size=1, stride=ds_stride, bias=False),
                _bn(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, cardinality=cardinality, **extra)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, cardinality=cardinality, **extra) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W) -> pooled features (N, D), the F of the distillation loss."""
        return self.forward_features_and_maps(x, ())[0]

    def forward_features_and_maps(self, x: torch.Tensor, layers: Sequence[str]):
        """(pooled features, [the feature map (N, C, T', H', W') each block of ``layers`` puts out, in
        that order]): for the intermediate mimic (``--hint``); ``layers`` are names of ``HINT_LAYERS``."""
        if not torch.jit.is_tracing() and (x.dim() != 5 or x.shape[1] != self.in_channels):
            raise ValueError(f"expected a clip (N, {self.in_channels}, T, H, W), got {tuple(x.shape)}")
        unknown = [name for name in layers if name not in HINT_LAYERS]
        if unknown:
            raise ValueError(f"no block {unknown[0]!r} to take a feature map from ({', '.join(HINT_LAYERS)})")
        x, kept = self.stem(x), {}
        for name in HINT_LAYERS:
            x = getattr(self, name)(x)
            kept[name] = x
        if self.causal:  # the mean of the last `window` frames' spatially pooled outputs
            return x.mean((3, 4))[:, :, -self.window:].mean(2), [kept[name] for name in layers]
        return torch.flatten(self.avgpool(x), 1), [kept[name] for name in layers]

    # -- streaming (causal networks) ----------------------------------------------------------
    def state_shapes(self, batch: int, size: int) -> List[Tuple[int, ...]]:
        """The shapes of the state ``step`` carries from frame to frame, for frames of ``size``
        pixels: each causal convolution's past input frames, in network order, then the last
        ``window - 1`` frames' pooled features (all 5-D: what ONNX Runtime and TensorRT take)."""
        if not self.causal:
            raise ValueError("only a causal network (causal_r3d_18) streams frame by frame")
        shapes, x = [], torch.zeros(batch, self.in_channels, 1, size, size)
        hooks = [m.register_forward_pre_hook(lambda m, inp: shapes.append((batch, inp[0].shape[1], m.past,
                                                                            *inp[0].shape[3:])))
                 for m in self.modules() if isinstance(m, CausalConv3d)]
        try:
            with torch.no_grad():
                self.forward_features(x)
        finally:
            for h in hooks:
                h.remove()
        return shapes + [(batch, self.num_features, self.window - 1, 1, 1)]

    def init_state(self, batch: int, size: int) -> List[torch.Tensor]:
        """The state before the first frame: zeros, as the clip network's padding before its first frame."""
        p = next(self.parameters())
        return [torch.zeros(s, dtype=p.dtype, device=p.device) for s in self.state_shapes(batch, size)]

    def step(self, frame: torch.Tensor, *state: torch.Tensor):
        """One frame (N, C, 1, H, W) -> (logits of the last ``window`` frames, *the next state). Fed a
        clip frame by frame from ``init_state``, the last step's logits are the clip's logits; from
        the ``window``-th frame on every step's logits are those of the clip ending there."""
        state = list(state)
        x = _step_sequence(self.stem, frame, state, 0)
        i = 1
        for name in HINT_LAYERS:
            for block in getattr(self, name):
                pasts = state[i:i + 2]
                x = block.step(x, pasts)
                state[i:i + 2] = pasts
                i += 2
        f = x.mean((3, 4), keepdim=True)  # (N, C, 1, 1, 1): this frame's pooled output
        ring = state[-1]
        pooled = (ring.sum(2, keepdim=True) + f) / self.window
        state[-1] = torch.cat([ring, f], 2)[:, :, 1:]
        return (self.forward_head(torch.flatten(pooled, 1)), *state)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# -- builders -------------------------------------------------------------------------------
def r3d_18(num_classes: int, in_channels: int = 3, width: float = 1.0, **kw) -> ResNet3D:
    """The standard 3D ResNet-18 (torchvision's layout: 33,192,435 parameters with 51 classes)."""
    return ResNet3D(BasicBlock, [2, 2, 2, 2], num_classes, in_channels, width, **kw)


def resnext3d_18(num_classes: int, in_channels: int = 3, width: float = 1.0, cardinality: int = 32, **kw) -> ResNet3D:
    """3D ResNeXt-18: the 18-layer layout with grouped 3x3x3 convolutions."""
    return ResNet3D(ResNeXtBlock, [2, 2, 2, 2], num_classes, in_channels, width, cardinality=cardinality, **kw)


def causal_r3d_18(num_classes: int, in_channels: int = 3, width: float = 1.0, window: int = 25, **kw) -> ResNet3D:
    """The streaming student: r3d_18's layers and weights' shapes, with causal convolutions (the
    output at frame t reads frames <= t), no temporal striding, and features averaged over the last
    ``window`` frames (the clip length it is trained on). ``step`` runs it one frame at a time."""
    return ResNet3D(BasicBlock, [2, 2, 2, 2], num_classes, in_channels, width, window=window, **kw)


MODELS: Dict[str, Callable[..., ResNet3D]] = {"r3d_18": r3d_18, "resnext3d_18": resnext3d_18,
                                              "causal_r3d_18": causal_r3d_18}
CAUSAL_MODELS = ("causal_r3d_18",)


def same_layers(a: str, b: str) -> bool:
    """Whether two models have the same layers and weight shapes (a causal network and its clip
    twin do): a student can then start from the teacher's blocks or follow its maps."""
    return a.replace("causal_", "") == b.replace("causal_", "")


def create_model(name: str, num_classes: int, in_channels: int = 3, width: float = 1.0, **kwargs) -> ResNet3D:
    """Build a network by name. ``None`` keyword values are dropped, so CLI defaults never override
    a model's own defaults."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(sorted(MODELS))}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return MODELS[name](num_classes, in_channels=in_channels, width=width, **kwargs)


# -- counting -------------------------------------------------------------------------------
def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of convolutions and linear layers for one input of ``input_shape``
    (batch included), the figure papers quote as GMACs/GFLOPs for 3D ResNets."""
    total = [0]

    def conv_hook(m, inp, out):
        k = 1
        for s in m.kernel_size:
            k *= s
        total[0] += out.numel() * (m.in_channels // m.groups) * k

    def linear_hook(m, inp, out):
        total[0] += out.numel() * m.in_features

    hooks: List = []
    for m in model.modules():
        if isinstance(m, (nn.Conv3d, nn.Conv2d)):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters())
        model(torch.zeros(*input_shape, dtype=p.dtype, device=p.device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total[0]


# -- the two roles of FTSnet ----------------------------------------------------------------
class FlowTeacher(nn.Module):
    """M1 + M2: TV-L1 layers turn an RGB clip into flow, a 3D network (in_channels=2) classifies it.

    ``forward(rgb)`` takes the *same normalised clip the student takes* (one preprocessing path):
    it undoes the normalisation with the ClipSpec's mean/std, computes flow between consecutive
    frames, scales it by ``1 / flow_scale`` and clamps it. ``forward_flow_features(flow)`` takes
    flow already computed (a cache), in pixels, (N, 2, T-1, H, W).
    """

    def __init__(self, backbone: ResNet3D, mean, std, flow_scale: float = FLOW_SCALE, flow_clip: float = 10.0,
                 tvl1: Optional[nn.Module] = None):
        super().__init__()
        from .flow import TVL1

        if backbone.in_channels != 2:
            raise ValueError("the flow teacher's network takes 2 channels (x, y flow)")
        self.tvl1 = tvl1 if tvl1 is not None else TVL1.preset("fast")
        self.backbone = backbone
        self.flow_scale, self.flow_clip = float(flow_scale), float(flow_clip)
        self.register_buffer("mean255", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1, 1) * 255)
        self.register_buffer("std255", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1, 1) * 255)
        self.num_features = backbone.num_features

    def flow(self, rgb: torch.Tensor) -> torch.Tensor:
        """Normalised RGB clip (N, 3, T, H, W) -> flow in pixels (N, 2, T-1, H, W)."""
        frames = (rgb * self.std255 + self.mean255).clamp(0, 255)
        return self.tvl1(frames)

    def normalise_flow(self, flow: torch.Tensor) -> torch.Tensor:
        return (flow / self.flow_scale).clamp(-self.flow_clip, self.flow_clip)

    def forward_flow_features(self, flow: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(self.normalise_flow(flow))

    def forward_flow_features_and_maps(self, flow: torch.Tensor, layers: Sequence[str]):
        return self.backbone.forward_features_and_maps(self.normalise_flow(flow), layers)

    def forward_features(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.forward_flow_features(self.flow(rgb))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_head(features)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(rgb))

    def freeze(self) -> "FlowTeacher":
        """After training: eval mode, no gradients (the student stage reads it only)."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self


