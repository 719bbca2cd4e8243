"""INT8 by explicit quantization: a Q/DQ ONNX calibrated on real clips.

TensorRT 10.1 deprecated its implicit INT8 calibrators and TensorRT 11 removed them from Python;
a Q/DQ model is the path that lasts, and the same file runs in ONNX Runtime here, so the INT8
model is checked on this CPU before it ever reaches the device.

Two flavours, placed for their runtimes:
- ``tensorrt`` (NAME.int8.onnx), as TensorRT's Q/DQ placement guidance asks: Q/DQ on the inputs of
  the weighted layers (Conv, Gemm) only, weights symmetric int8 per output channel, activations
  symmetric int8; no Q/DQ on the outputs of weighted layers (TensorRT fuses Conv+bias+ReLU+Add and
  picks the output type itself); the identity shortcut of each residual Add reads the quantized
  copy of the block input, so TensorRT can fuse the Add into the convolution before it. What is
  left unquantized runs in FP16 (engine.py builds with the FP16 flag too). The 3D convolutions
  with fewer than 4 input channels (the RGB stem) stay in float (``tensorrt_float_convs`` says
  why), and so does any convolution a TensorRT build could not make in INT8 (``keep_fp``).
- ``cpu`` (NAME.int8.cpu.onnx): uint8 activations x int8 weights with reduced range, ONNX
  Runtime's fast path on x86 without VNNI (docs/results.md has the measured speed-ups).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..core.errors import ExportError, first_line
from .bundle import metadata_path

log = logging.getLogger(__name__)


class _NoPreprocessAdvice(logging.Filter):
    """ONNX Runtime's quantizer logs "Please consider pre-processing" on the root logger for every
    model. Ours is already shape-inferred and simplified by the export step, so the advice is noise
    in the middle of a progress display; everything else it logs still comes through."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "consider to run pre-processing" not in str(record.msg) and \
            "consider pre-processing" not in str(record.msg)


METHODS = ("minmax", "entropy", "percentile")


class ClipReader:
    """Feeds calibration clips (N, 3, T, H, W) to ONNX Runtime's calibrator, ``batch`` at a time;
    or, for a graph of several inputs (the streaming student's frame and state), a list of whole
    feeds, one at a time."""

    def __init__(self, clips: np.ndarray, input_name: str, batch: int, progress=None):
        self.clips, self.name, self.batch, self.i, self.end = clips, input_name, batch, 0, None
        self.bar = progress(total=len(clips) // batch, desc="calibrating", unit="batch") if progress else None

    def get_next(self):
        if self.i + self.batch > (self.end if self.end is not None else len(self.clips)):
            if self.bar is not None and self.i + self.batch > len(self.clips):
                self.bar.close()
            return None
        chunk = self.clips[self.i:self.i + self.batch]
        self.i += self.batch
        if self.bar is not None:
            self.bar.update(1)
        return chunk[0] if isinstance(chunk, list) else {self.name: chunk}

    def rewind(self):
        self.i = 0

    def __len__(self):
        return len(self.clips) // self.batch

    def set_range(self, start_index: int, end_index: int):
        """ONNX Runtime's strided calibration: serve batches [start_index, end_index) next."""
        self.i = start_index * self.batch
        self.end = end_index * self.batch


def conv_nodes(onnx_path) -> List[str]:
    import onnx

    return [n.name for n in onnx.load(str(onnx_path)).graph.node if n.op_type == "Conv"]


FLAVORS = ("tensorrt", "cpu")

# Why the TensorRT flavour leaves a 3-channel 3D convolution unquantized: TensorRT's INT8
# convolutions read channel-vectorized tensors (4 or 32 channels a vector), so 3 channels are
# padded, and Q/DQ 3D convolutions on few channels are reported unbuildable ("Could not find any
# implementation for node", TensorRT issues #3139, #2125, #1726) or no faster than FP16 (#1176).
STEM_REASON = "3D convolution on {c} input channels: TensorRT's INT8 kernels want 4 or more (channel-vectorized)"


def tensorrt_float_convs(onnx_path) -> Dict[str, str]:
    """The Conv nodes the TensorRT flavour keeps in float (FP16 in the engine), each with why:
    3D convolutions with fewer than 4 input channels (the stem of an RGB network)."""
    import onnx

    g = onnx.load(str(onnx_path)).graph
    weights = {t.name: list(t.dims) for t in g.initializer}
    out: Dict[str, str] = {}
    for n in g.node:
        if n.op_type != "Conv" or len(n.input) < 2 or n.input[1] not in weights:
            continue
        dims = weights[n.input[1]]
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        if len(dims) == 5 and dims[1] * group < 4:
            out[n.name] = STEM_REASON.format(c=dims[1] * group)
    return out


def int8_path(fp32_onnx, flavor: str) -> Path:
    base = Path(fp32_onnx).name.replace(".onnx", "")
    return Path(fp32_onnx).with_name(base + (".int8.onnx" if flavor == "tensorrt" else ".int8.cpu.onnx"))


CALIB_MEMORY_MB = 2048  # histogram calibration keeps every activation of every clip: refused past this


def activation_bytes(onnx_path) -> int:
    """Bytes of every intermediate float tensor of one forward pass (what ONNX Runtime's histogram
    calibrators keep per batch)."""
    import onnx

    m = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    total = 0
    for v in list(m.graph.value_info) + list(m.graph.output):
        t = v.type.tensor_type
        if t.elem_type != onnx.TensorProto.FLOAT:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in t.shape.dim]
        total += int(np.prod(dims)) * 4
    return total


def quantize_int8(fp32_onnx, clips: np.ndarray, out=None, method: str = "minmax", keep_stem_fp: bool = True,
                  progress=None, flavor: str = "tensorrt", memory_mb: int = CALIB_MEMORY_MB,
                  keep_fp: Sequence[str] = ()) -> Dict:
    """Calibrate on ``clips`` and write a Q/DQ INT8 ONNX of ``flavor`` (see the module's text).

    ``keep_stem_fp`` leaves the stem in float: in the CPU flavour the first convolution (quantizing
    it made that flavour slower), in the TensorRT flavour the convolutions ``tensorrt_float_convs``
    names. ``keep_fp`` names more Conv nodes to leave in float (those a TensorRT build could not
    make in INT8). Calibration holds the activations of at most
    ``memory_mb`` worth of batches at a time (the clips are fed in strides), whatever the method.

    Args:
        fp32_onnx: the fp32 model (or one stage of a streaming student).
        clips: calibration clips, or a list of whole feeds for a graph of several inputs.
        out: the INT8 model's path (default NAME.int8.onnx or NAME.int8.cpu.onnx).
        method: minmax, entropy or percentile.
        keep_stem_fp: leave the stem in float.
        progress: a progress factory, or None.
        flavor: tensorrt or cpu.
        memory_mb: what histogram calibration may hold.
        keep_fp: more Conv nodes to leave in float.

    Returns:
        The report: the file, the method, calibration clips, the Q/DQ counts and the convolutions
        kept in float with the reason for each.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in METHODS:
        raise ValueError(f"--calib-method must be one of {METHODS}")
    if flavor not in FLAVORS:
        raise ValueError(f"flavor must be one of {FLAVORS}")
    fp32_onnx = Path(fp32_onnx)
    out = Path(out) if out else int8_path(fp32_onnx, flavor)
    batch = _static_batch(fp32_onnx) or 1
    if len(clips) < batch:
        raise ExportError(f"calibration needs at least {batch} clips, got {len(clips)}")
    per_batch = activation_bytes(fp32_onnx) * batch
    batches = len(clips) // batch
    # ONNX Runtime's calibrators keep every activation of every batch they are fed; fed in strides
    # (CalibStridedMinMax), they fold each stride into the ranges or histograms and drop it.
    fit = (memory_mb << 20) // max(per_batch, 1)
    if fit < 1:
        raise ExportError(f"calibration holds one batch's activations, about {per_batch / 2 ** 20:.0f} MiB, over the "
                          f"budget of {memory_mb} MiB; raise --calib-memory-mb")
    stride = max(d for d in range(1, batches + 1) if batches % d == 0 and d <= fit)
    extra: Dict = {"CalibStridedMinMax": stride} if stride < batches else {}
    calib = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}[method]
    if flavor == "tensorrt":
        kept = tensorrt_float_convs(fp32_onnx) if keep_stem_fp else {}
        exclude = list(kept)
        act, reduce_range = QuantType.QInt8, False
        ops = ["Conv", "Gemm", "MatMul"]
        extra.update({"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                      "OpTypesToExcludeOutputQuantization": ops})
    else:
        exclude = conv_nodes(fp32_onnx)[:1] if keep_stem_fp else []
        kept = {n: "the CPU flavour's stem: quantized, it was slower in ONNX Runtime" for n in exclude}
        act, reduce_range = QuantType.QUInt8, True
        ops = ["Conv", "Gemm", "MatMul", "Add", "GlobalAveragePool", "Relu"]
        extra["WeightSymmetric"] = True
    stem_kept = bool(exclude)
    known = set(conv_nodes(fp32_onnx))
    for name in keep_fp:
        if name not in known:
            raise ExportError(f"{fp32_onnx}: no convolution named {name!r} to keep in float")
        if name not in kept:
            kept[name] = "TensorRT could not build it in INT8"
            exclude.append(name)
    if method == "percentile":
        extra["CalibPercentile"] = 99.99
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    quiet = _NoPreprocessAdvice()
    logging.getLogger().addFilter(quiet)
    try:
        quantize_static(str(fp32_onnx), str(tmp), ClipReader(clips, "clip", batch, progress),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=act, reduce_range=reduce_range,
                        weight_type=QuantType.QInt8, calibrate_method=calib, nodes_to_exclude=exclude,
                        op_types_to_quantize=ops, extra_options=extra)
        rewired = residuals_read_quantized(tmp) if flavor == "tensorrt" else 0
        os.replace(tmp, out)
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"INT8 quantization failed: {type(e).__name__}: {first_line(e, 200)}")
    finally:
        logging.getLogger().removeFilter(quiet)
        if tmp.exists():
            tmp.unlink()
        for junk in Path(out.parent).glob("augmented_model*.onnx"):
            junk.unlink()
    return {"int8_onnx": str(out), "fp32_onnx": str(fp32_onnx), "flavor": flavor, "method": method,
            "calibration_clips": int(len(clips) // batch * batch), "calibration_stride_batches": stride,
            "calibration_peak_mib": round(stride * per_batch / 2 ** 20, 1), "stem_in_float": stem_kept,
            "excluded_nodes": exclude, "kept_in_float": kept, "qdq": qdq_counts(out), "residuals_rewired": rewired}


def residuals_read_quantized(onnx_path) -> int:
    """Point the identity shortcut of each residual Add at a quantized copy of its tensor.

    After Q/DQ on Conv inputs, a block input X feeds conv1 as DQ(Q(X)) and the Add as plain X.
    TensorRT fuses an Add into the convolution before it only when the Add's other input is
    quantized, so the Add is rewired to read DQ(Q(X)): the same values the convolution sees, no new
    scale. In a streaming stage graph conv1 reads Concat(past, X) instead, quantized after the
    Concat; X then gets a Q/DQ pair of its own with that Concat's scale (X's values are within its
    range), which the Add reads. Returns how many Adds were rewired; the file is rewritten in place."""
    import onnx
    from onnx import helper

    m = onnx.load(str(onnx_path))
    g = m.graph
    producer = {o: n for n in g.node for o in n.output}
    consumers: Dict[str, List] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    dq_of: Dict[str, str] = {}
    for n in g.node:  # X -> QuantizeLinear -> DequantizeLinear -> X_dq
        src = producer.get(n.input[0]) if n.op_type == "DequantizeLinear" else None
        if src is not None and src.op_type == "QuantizeLinear":
            dq_of.setdefault(producer[n.input[0]].input[0], n.output[0])
    scale_of: Dict[str, List[str]] = {}  # X -> the (scale, zero point) of Q(Concat(..., X, ...))
    for n in g.node:
        if n.op_type == "Concat":
            q = next((c for c in consumers.get(n.output[0], []) if c.op_type == "QuantizeLinear"), None)
            if q is not None:
                for x in n.input:
                    scale_of.setdefault(x, list(q.input[1:]))
    rewired, made = 0, 0
    for n in list(g.node):
        if n.op_type != "Add" or len(n.input) != 2:
            continue
        kinds = [producer[i].op_type if i in producer else None for i in n.input]
        if kinds.count("Conv") != 1:
            continue
        k = 1 - kinds.index("Conv")
        x = n.input[k]
        if x not in dq_of and x in scale_of:
            made += 1
            q_out, dq_out = f"{x}_shortcut_q{made}", f"{x}_shortcut_dq{made}"
            at = list(g.node).index(n)
            g.node.insert(at, helper.make_node("DequantizeLinear", [q_out, *scale_of[x]], [dq_out],
                                               name=f"{n.name}_shortcut_dq"))
            g.node.insert(at, helper.make_node("QuantizeLinear", [x, *scale_of[x]], [q_out],
                                               name=f"{n.name}_shortcut_q"))
            dq_of[x] = dq_out
        if x in dq_of:
            n.input[k] = dq_of[x]
            rewired += 1
    if rewired:
        from ..core.artifacts import atomic_write_bytes
        atomic_write_bytes(onnx_path, m.SerializeToString())
    return rewired


def qdq_counts(onnx_path) -> Dict:
    """How many Q/DQ nodes a model has, and which op types read a dequantized tensor."""
    import onnx

    g = onnx.load(str(onnx_path)).graph
    dq_out = {n.output[0] for n in g.node if n.op_type == "DequantizeLinear"}
    reads: Dict[str, int] = {}
    for n in g.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear") and any(i in dq_out for i in n.input):
            reads[n.op_type] = reads.get(n.op_type, 0) + 1
    return {"QuantizeLinear": sum(n.op_type == "QuantizeLinear" for n in g.node),
            "DequantizeLinear": sum(n.op_type == "DequantizeLinear" for n in g.node),
            "ops_reading_quantized": reads}


def _static_batch(onnx_path) -> Optional[int]:
    import onnx

    dim = onnx.load(str(onnx_path)).graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_value if dim.HasField("dim_value") else None


def fp16_onnx(fp32_onnx, out=None, meta: Optional[Dict] = None) -> Dict:
    """An fp16 copy for CUDA runtimes (inputs and outputs stay float32, so callers do not change),
    committed with ``meta`` as its bundle where given (a stage file beside a main one has none)."""
    import onnx

    try:
        from onnxconverter_common import float16
    except ImportError:
        float16 = None
    fp32_onnx = Path(fp32_onnx)
    out = Path(out) if out else fp32_onnx.with_name(fp32_onnx.name.replace(".onnx", "") + ".fp16.onnx")
    if float16 is None:
        return {"fp16_onnx": None, "note": "onnxconverter-common not installed: no fp16 ONNX "
                "(TensorRT builds FP16 from the fp32 ONNX with --fp16 anyway)"}
    m = float16.convert_float_to_float16(onnx.load(str(fp32_onnx)), keep_io_types=True)
    if meta is not None:
        from .bundle import write_onnx
        write_onnx(out, m, meta)
    else:
        from ..core.artifacts import atomic_write_bytes
        del m.metadata_props[:]
        atomic_write_bytes(out, m.SerializeToString())
    return {"fp16_onnx": str(out)}


def check_int8(fp32_onnx, int8_onnx, clips: np.ndarray, labels: Optional[np.ndarray] = None,
               min_agreement: float = 0.0) -> Dict:
    """fp32 vs INT8 ONNX in ONNX Runtime on the same clips: top-1 agreement, and accuracy of each
    where labels are given. Raises ExportError below ``min_agreement``. A streaming student's stage
    graphs (the files beside each path) are stepped through each clip frame by frame, as the camera
    steps them.

    Args:
        fp32_onnx, int8_onnx: the pair.
        clips: the check's clips; labels: their classes, or None.
        min_agreement: the smallest top-1 agreement allowed.

    Returns:
        clips, top1_agreement, max_abs_logit_diff, and fp32_top1/int8_top1 with labels.
    """
    from .bundle import load_bundle
    from .onnxrt import ort_session, run_onnx
    from .streamplan import onnx_stages, stepped_logits

    stream = load_bundle(fp32_onnx).get("streaming")
    if stream:
        ref = stepped_logits(onnx_stages(fp32_onnx, ["CPUExecutionProvider"]), clips, stream)
        got = stepped_logits(onnx_stages(int8_onnx, ["CPUExecutionProvider"]), clips, stream)
    else:
        b32, b8 = _static_batch(fp32_onnx), _static_batch(int8_onnx)
        ref = run_onnx(ort_session(fp32_onnx, ["CPUExecutionProvider"]), clips, b32)
        got = run_onnx(ort_session(int8_onnx, ["CPUExecutionProvider"]), clips, b8)
    agree = float((ref.argmax(1) == got.argmax(1)).mean())
    rep = {"clips": int(len(clips)), "top1_agreement": agree,
           "max_abs_logit_diff": float(np.abs(ref - got).max())}
    if labels is not None:
        rep["fp32_top1"] = float((ref.argmax(1) == labels).mean() * 100)
        rep["int8_top1"] = float((got.argmax(1) == labels).mean() * 100)
    if agree < min_agreement:
        raise ExportError(f"{Path(int8_onnx).name}: INT8 agrees with fp32 on {agree:.1%} of clips "
                          f"(need {min_agreement:.0%}); calibrate on more or other clips (--calib-clips, "
                          "--calib-method)")
    return rep


def int8_metadata(fp32_meta: dict, report: Dict) -> dict:
    """The INT8 model's bundle: the fp32 model's, with its precision, quantization report and parent."""
    meta = {k: v for k, v in fp32_meta.items() if k not in ("parity", "onnx_sha256")}
    meta.update(precision="int8", quantization=report, parent_onnx=report.get("fp32_onnx"),
                parent_sha256=fp32_meta.get("onnx_sha256"))
    return meta


def write_int8_metadata(fp32_meta: dict, int8_onnx, report: Dict) -> Path:
    """An INT8 model's bundle written into it and beside it, in place (benchmarks; build-engine
    commits a checked candidate instead)."""
    import onnx

    from .bundle import write_onnx

    write_onnx(int8_onnx, onnx.load(str(int8_onnx)), int8_metadata(fp32_meta, report))
    return metadata_path(int8_onnx)
