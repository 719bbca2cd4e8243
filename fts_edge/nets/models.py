"""3D networks: R3D-18 and ResNeXt3D-18, and FTSnet's flow teacher (FlowTeacher; the student is a
plain ResNet3D on RGB).

One flat file in dependency order: convolutions, blocks, stem, the network, the builders, the
roles. Every network answers ``forward_features(x) -> (N, D)`` and ``forward_head(f) -> logits``;
distillation reads both networks through that interface.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..data.clipspec import FLOW_SCALE
from ..device.streamplan import NEXT, schedule
from .names import CAUSAL_MODELS, HINT_LAYERS, MODEL_NAMES, hint_layers, same_layers  # noqa: F401  (re-exported)


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
    """A 3D convolution whose output at frame t reads frames <= t only: time is padded on the past
    side (zeros before the first frame); space is padded and strided as usual.

    With a temporal stride s the outputs are right-aligned: one at the clip's last frame and every
    s frames before it, so a stream can emit one whenever its newest frame is such a frame.
    ``forward(x)`` runs a clip (N, C, T, H, W) -> (N, C', ceil(T / s), H', W'); ``step(x, past)``
    runs the s new frames (N, C, s, H, W) with the ``past`` k - s input frames before them and
    returns (one output frame, the next step's past). Stepping a clip from zero past gives the
    clip's outputs exactly.
    """

    def __init__(self, in_planes: int, out_planes: int, kernel_size=(3, 3, 3), spatial_stride: int = 1,
                 groups: int = 1, temporal_stride: int = 1):
        kt, kh, kw = kernel_size
        if not 1 <= temporal_stride <= kt:
            raise ValueError(f"a causal convolution's temporal stride must be 1..{kt}, got {temporal_stride}")
        super().__init__(in_planes, out_planes, kernel_size=(kt, kh, kw),
                         stride=(temporal_stride, spatial_stride, spatial_stride),
                         padding=(0, kh // 2, kw // 2), groups=groups, bias=False)
        self.past = kt - temporal_stride

    def forward(self, x: torch.Tensor, window: bool = False) -> torch.Tensor:
        if window:  # x is exactly one output's input frames (what step assembles)
            return super().forward(x)
        s, k = self.stride[0], self.kernel_size[0]
        late = -(x.shape[2] - 1) % s  # zeros that put an output on the last frame
        y = super().forward(nn.functional.pad(x, (0, 0, 0, 0, k - 1 + late, 0)))
        return y[:, :, 1:] if late else y  # an output of padding only is no frame's output

    def step(self, x: torch.Tensor, past: torch.Tensor):
        window = torch.cat([past, x], 2)
        return self(window, True), window[:, :, self.stride[0]:]


class PickConv3d(nn.Conv3d):
    """The 1x1x1 shortcut of a causal block that halves time: it keeps the frames the block's
    causal convolution emits at (the last, and every ``temporal_stride`` before it)."""

    def __init__(self, in_planes: int, out_planes: int, temporal_stride: int, spatial_stride: int):
        super().__init__(in_planes, out_planes, kernel_size=1, stride=(1, spatial_stride, spatial_stride), bias=False)
        self.temporal_stride = temporal_stride

    def forward(self, x: torch.Tensor, newest: bool = False) -> torch.Tensor:
        s = self.temporal_stride
        return super().forward(x[:, :, -1:] if newest else x[:, :, (x.shape[2] - 1) % s::s] if s > 1 else x)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        return self(x, True)


def _bn(c: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(c)


# -- blocks ---------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    """Two 3x3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, cardinality: int = 1, causal: bool = False):
        super().__init__()
        conv = (lambda i, o, s=1: CausalConv3d(i, o, spatial_stride=s, temporal_stride=s)) if causal else Conv3DSimple
        self.conv1 = nn.Sequential(conv(inplanes, planes, stride), _bn(planes), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv(planes, planes), _bn(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + identity)

    def step(self, x, states: List[torch.Tensor]):
        """The block's new input frames (its temporal stride of them) -> its one new output frame;
        ``states`` are its two convolutions' pasts, replaced in place."""
        identity = x if self.downsample is None else _step_sequence(self.downsample, x)
        y = _step_sequence(self.conv1, x, states, 0)
        y = _step_sequence(self.conv2, y, states, 1)
        return self.relu(y + identity)


def _step_sequence(seq: nn.Sequential, x: torch.Tensor, states: Optional[List[torch.Tensor]] = None,
                   i: int = 0) -> torch.Tensor:
    """Run ``seq`` on new frames; its CausalConv3d (if any) steps with ``states[i]`` (replaced)."""
    for m in seq:
        if isinstance(m, CausalConv3d):
            x, states[i] = m.step(x, states[i])
        elif isinstance(m, PickConv3d):
            x = m.step(x)
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
class ResNet3D(nn.Module):
    def __init__(self, block, layers: Sequence[int], num_classes: int, in_channels: int = 3,
                 width: float = 1.0, cardinality: int = 32, dropout: float = 0.0, window: Optional[int] = None):
        super().__init__()
        # window: a causal network (CausalConv3d) trained on clips of ``window`` frames, whose
        # features average the layer4 outputs of the last ``window`` frames; None: the clip network.
        if window is not None and window < 2:
            raise ValueError(f"a causal network's window is the clip it trains on, >= 2 frames, got {window}")
        self._spec_cache: Dict = {}
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
            conv = (PickConv3d(self.inplanes, planes * block.expansion, stride, stride) if self.causal else
                    nn.Conv3d(self.inplanes, planes * block.expansion, kernel_size=1,
                              stride=Conv3DSimple.get_downsample_stride(stride), bias=False))
            downsample = nn.Sequential(conv, _bn(planes * block.expansion))
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
        if self.causal:  # the mean of the outputs of the last `window` frames
            return x.mean((3, 4))[:, :, -self.pool_frames:].mean(2), [kept[name] for name in layers]
        return torch.flatten(self.avgpool(x), 1), [kept[name] for name in layers]

    # -- streaming (causal networks): four stages, scheduled as fts_edge.streamplan says --------
    @property
    def pool_frames(self) -> int:
        """How many layer4 outputs a ``window``-frame clip has (time halves in layers 2, 3 and 4)."""
        n = self.window
        for _ in range(3):
            n = -(-n // 2)
        return n

    def _stage_modules(self, k: int) -> List[nn.Module]:
        return [self.stem, self.layer1] if k == 0 else [getattr(self, HINT_LAYERS[k])]

    def state_spec(self, batch: int, size: int) -> List[Tuple[str, Tuple[int, ...], int]]:
        """(name, shape, stage) of every tensor the stream carries from step to step, for frames of
        ``size`` pixels, all 5-D (what ONNX Runtime and TensorRT take): each causal convolution's
        past input frames (named by module), ``in2``/``in3``/``in4`` (the two newest outputs of the
        stage before layer2/3/4, which that stage reads and the one before writes), and ``pool``
        (the last pool_frames - 1 layer4 outputs, pooled over space; absent when that is 0)."""
        if not self.causal:
            raise ValueError("only a causal network (causal_r3d_18) streams frame by frame")
        if (batch, size) not in self._spec_cache:
            self._spec_cache[batch, size] = self._state_spec(batch, size)
        return self._spec_cache[batch, size]

    def _state_spec(self, batch: int, size: int):
        stage_of = {}
        for k in range(4):
            for mod in self._stage_modules(k):
                for m in mod.modules():
                    stage_of[m] = k
        names = {m: n for n, m in self.named_modules()}
        spec, outs = [], {}
        hooks = [m.register_forward_pre_hook(lambda m, inp: spec.append((names[m], (batch, inp[0].shape[1], m.past,
                                                                                    *inp[0].shape[3:]), stage_of[m])))
                 for m in self.modules() if isinstance(m, CausalConv3d)]
        hooks += [getattr(self, n).register_forward_hook(lambda m, inp, out, n=n: outs.__setitem__(n, out.shape))
                  for n in HINT_LAYERS[:3]]
        try:
            with torch.no_grad():
                self.forward_features(torch.zeros(batch, self.in_channels, 1, size, size,
                                                  device=next(self.parameters()).device))
        finally:
            for h in hooks:
                h.remove()
        for k, n in enumerate(HINT_LAYERS[:3]):
            c, _, h, w = outs[n][1:]
            spec.append((f"in{k + 2}", (batch, c, 2, h, w), k))
        if self.pool_frames > 1:
            spec.append(("pool", (batch, self.num_features, self.pool_frames - 1, 1, 1), 3))
        return spec

    def stage_io(self, k: int, batch: int = 1, size: int = 112) -> Tuple[List[str], List[str]]:
        """Stage k's input names (what it reads, in order) and output names (what it writes:
        ``logits`` first for layer4, then ``<state>.next`` for each state it replaces)."""
        spec = self.state_spec(batch, size)
        pasts = [n for n, _, s in spec if s == k and not n.startswith("in") and n != "pool"]
        source = "frame" if k == 0 else f"in{k + 1}"
        sink = [f"in{k + 2}"] if k < 3 else (["pool"] if any(n == "pool" for n, _, _ in spec) else [])
        return [source, *pasts, *sink], (["logits"] if k == 3 else []) + [f"{n}{NEXT}" for n in [*pasts, *sink]]

    def init_state(self, batch: int, size: int) -> Dict[str, torch.Tensor]:
        """The state before the first frame: zeros, as the clip network's padding before its first frame."""
        p = next(self.parameters())
        return {n: torch.zeros(s, dtype=p.dtype, device=p.device) for n, s, _ in self.state_spec(batch, size)}

    def stage_step(self, k: int, *inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Run stage k once on ``inputs`` (in ``stage_io`` order) -> its outputs (in that order)."""
        x, *rest = inputs
        nconv = sum(isinstance(m, CausalConv3d) for mod in self._stage_modules(k) for m in mod.modules())
        pasts, sink = list(rest[:nconv]), rest[nconv:]
        i = 0
        if k == 0:
            x = _step_sequence(self.stem, x, pasts, 0)
            i = 1
        for block in self._stage_modules(k)[-1]:
            two = pasts[i:i + 2]
            x = block.step(x, two)
            pasts[i:i + 2] = two
            i += 2
        if k < 3:
            return (*pasts, torch.cat([sink[0][:, :, 1:], x], 2))
        f = x.mean((3, 4), keepdim=True)  # (N, C, 1, 1, 1): this output pooled over space
        if not sink:
            return (self.forward_head(torch.flatten(f, 1)), *pasts)
        ring = sink[0]
        pooled = (ring.sum(2, keepdim=True) + f) / self.pool_frames
        return (self.forward_head(torch.flatten(pooled, 1)), *pasts, torch.cat([ring, f], 2)[:, :, 1:])

    def step(self, frame: torch.Tensor, state: Dict[str, torch.Tensor], n: int):
        """Step n of a stream: one frame (N, C, 1, H, W) and the state (``init_state`` at n = 0) ->
        (the logits layer4 emitted at this step or None, the next state). Fed a clip of ``window``
        frames and LATENCY more (any frames), step window - 1 + LATENCY gives the clip's logits."""
        state, logits, deeper = dict(state), None, schedule(n, self.window)
        # the deeper stage first: it reads what the frame stage rewrites
        for k in ([deeper] if deeper is not None else []) + [0]:
            ins, outs = self.stage_io(k, frame.shape[0], frame.shape[-1])
            res = self.stage_step(k, *[frame if i == "frame" else state[i] for i in ins])
            for name, value in zip(outs, res):
                if name == "logits":
                    logits = value
                else:
                    state[name[:-len(NEXT)]] = value
        return logits, state

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
    """The streaming student: r3d_18's layers, weights' shapes and temporal strides, with causal
    convolutions (the output at frame t reads frames <= t, strided outputs aligned to the clip's
    last frame) and features averaged over the layer4 outputs of the last ``window`` frames (the
    clip length it is trained on). ``step`` runs it one frame at a time."""
    return ResNet3D(BasicBlock, [2, 2, 2, 2], num_classes, in_channels, width, window=window, **kw)


MODELS: Dict[str, Callable[..., ResNet3D]] = {"r3d_18": r3d_18, "resnext3d_18": resnext3d_18,
                                              "causal_r3d_18": causal_r3d_18}
assert tuple(MODELS) == MODEL_NAMES
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


class _MacCounter:
    """Counts the multiply-accumulates of a model's convolutions and linear layers while in a
    ``with`` block (forward hooks; the model in eval mode meanwhile): ``take()`` returns the count
    so far and starts again from zero."""

    def __init__(self, model: nn.Module):
        self.model, self.total, self.hooks = model, 0, []

    def _hook(self, m, inp, out):
        if isinstance(m, nn.Linear):
            self.total += out.numel() * m.in_features
            return
        k = 1
        for s in m.kernel_size:
            k *= s
        self.total += out.numel() * (m.in_channels // m.groups) * k

    def take(self) -> int:
        n, self.total = self.total, 0
        return n

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()
        self.hooks = [m.register_forward_hook(self._hook) for m in self.model.modules()
                      if isinstance(m, (nn.Conv3d, nn.Conv2d, nn.Linear))]
        return self

    def __exit__(self, *exc):
        for h in self.hooks:
            h.remove()
        self.model.train(self.was_training)


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of convolutions and linear layers for one input of ``input_shape``
    (batch included), the figure papers quote as GMACs/GFLOPs for 3D ResNets."""
    with _MacCounter(model) as c:
        p = next(model.parameters())
        model(torch.zeros(*input_shape, dtype=p.dtype, device=p.device))
        return c.take()


@torch.no_grad()
def stream_macs(net: "ResNet3D", size: int) -> Dict[str, float]:
    """Multiply-accumulates of a streaming network's steps: each stage once, and the mean step (the
    frame stage every frame, layer2/3/4 every 2nd/4th/8th)."""
    from ..device.streamplan import STAGES

    state, res = net.init_state(1, size), {}
    with _MacCounter(net) as c:
        for k, name in enumerate(STAGES):
            ins, _ = net.stage_io(k, 1, size)
            frame = torch.zeros(1, net.in_channels, 1, size, size)
            net.stage_step(k, *[frame if n == "frame" else state[n] for n in ins])
            res[f"{name} stage"] = c.take()
    res["mean step"] = sum(res[f"{n} stage"] / 2 ** k for k, n in enumerate(STAGES))
    return res


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
        from ..flow.tvl1 import TVL1

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


