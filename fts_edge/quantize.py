"""INT8 by explicit quantization: a Q/DQ ONNX calibrated on real clips.

TensorRT 10.1 deprecated its implicit INT8 calibrators and TensorRT 11 removed them from Python;
a Q/DQ model is the path that lasts, and the same file runs in ONNX Runtime here, so the INT8
model is checked on this CPU before it ever reaches the device. Weights are symmetric int8 per
output channel and activations symmetric int8 (what TensorRT wants); biases stay float.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import numpy as np

from .artifacts import sha256_file
from .checkpoint import write_metadata
from .errors import ExportError

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
    """Feeds calibration clips (N, 3, T, H, W) to ONNX Runtime's calibrator, ``batch`` at a time."""

    def __init__(self, clips: np.ndarray, input_name: str, batch: int, progress=None):
        self.clips, self.name, self.batch, self.i = clips, input_name, batch, 0
        self.bar = progress(total=len(clips) // batch, desc="calibrating", unit="batch") if progress else None

    def get_next(self):
        if self.i + self.batch > len(self.clips):
            if self.bar is not None:
                self.bar.close()
            return None
        chunk = self.clips[self.i:self.i + self.batch]
        self.i += self.batch
        if self.bar is not None:
            self.bar.update(1)
        return {self.name: chunk}

    def rewind(self):
        self.i = 0


def conv_nodes(onnx_path) -> List[str]:
    import onnx

    return [n.name for n in onnx.load(str(onnx_path)).graph.node if n.op_type == "Conv"]


FLAVORS = ("tensorrt", "cpu")


def int8_path(fp32_onnx, flavor: str) -> Path:
    base = Path(fp32_onnx).name.replace(".onnx", "")
    return Path(fp32_onnx).with_name(base + (".int8.onnx" if flavor == "tensorrt" else ".int8.cpu.onnx"))


def quantize_int8(fp32_onnx, clips: np.ndarray, out=None, method: str = "minmax", keep_stem_fp: bool = True,
                  progress=None, flavor: str = "tensorrt") -> Dict:
    """Calibrate on ``clips`` and write a Q/DQ INT8 ONNX.

    flavor "tensorrt" (NAME.int8.onnx): symmetric int8 activations and weights, float biases, as
    TensorRT's explicit quantization wants. flavor "cpu" (NAME.int8.cpu.onnx): uint8 activations x
    int8 weights with reduced range, ONNX Runtime's fast path on x86 without VNNI. Measured on this
    project's 2-core AVX2 CPU, full-width r3d_18 at 1x3x25x112x112: the symmetric model ran 1.29x
    faster than fp32 in ONNX Runtime (most convolutions were left unfused, in fp32), the CPU flavor
    2.02x. ``keep_stem_fp`` leaves the first convolution (3 input channels) in float: quantizing
    it too made the CPU flavor slower (1.65x).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in METHODS:
        raise ValueError(f"--calib-method must be one of {METHODS}")
    if flavor not in FLAVORS:
        raise ValueError(f"flavor must be one of {FLAVORS}")
    fp32_onnx = Path(fp32_onnx)
    out = Path(out) if out else int8_path(fp32_onnx, flavor)
    sess_meta = _static_batch(fp32_onnx)
    batch = sess_meta or 1
    if len(clips) < batch:
        raise ExportError(f"calibration needs at least {batch} clips, got {len(clips)}")
    exclude = conv_nodes(fp32_onnx)[:1] if keep_stem_fp else []
    calib = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}[method]
    if flavor == "tensorrt":
        act, reduce_range = QuantType.QInt8, False
        extra = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}
    else:
        act, reduce_range = QuantType.QUInt8, True
        extra = {"WeightSymmetric": True}
    if method == "percentile":
        extra["CalibPercentile"] = 99.99
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    quiet = _NoPreprocessAdvice()
    logging.getLogger().addFilter(quiet)
    try:
        quantize_static(str(fp32_onnx), str(tmp), ClipReader(clips, "clip", batch, progress),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=act, reduce_range=reduce_range,
                        weight_type=QuantType.QInt8, calibrate_method=calib, nodes_to_exclude=exclude,
                        op_types_to_quantize=["Conv", "Gemm", "MatMul", "Add", "GlobalAveragePool", "Relu"],
                        extra_options=extra)
        os.replace(tmp, out)
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"INT8 quantization failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    finally:
        logging.getLogger().removeFilter(quiet)
        if tmp.exists():
            tmp.unlink()
        for junk in Path(out.parent).glob("augmented_model*.onnx"):
            junk.unlink()
    return {"int8_onnx": str(out), "flavor": flavor, "method": method,
            "calibration_clips": int(len(clips) // batch * batch),
            "stem_in_float": bool(keep_stem_fp), "excluded_nodes": exclude}


def _static_batch(onnx_path) -> Optional[int]:
    import onnx

    dim = onnx.load(str(onnx_path)).graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_value if dim.HasField("dim_value") else None


def fp16_onnx(fp32_onnx, out=None) -> Dict:
    """An fp16 copy for CUDA runtimes (inputs and outputs stay float32, so callers do not change)."""
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
    from .artifacts import atomic_write_bytes
    atomic_write_bytes(out, m.SerializeToString())
    return {"fp16_onnx": str(out)}


def check_int8(fp32_onnx, int8_onnx, clips: np.ndarray, labels: Optional[np.ndarray] = None,
               min_agreement: float = 0.0) -> Dict:
    """fp32 vs INT8 ONNX in ONNX Runtime on the same clips: top-1 agreement, and accuracy of each
    where labels are given. Raises ExportError below ``min_agreement``."""
    from .export import ort_session, run_onnx

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
                          f"(need {min_agreement:.0%}); calibrate on more or other clips (--calib-clips, --calib-method)")
    return rep


def write_int8_metadata(fp32_meta: dict, int8_onnx, report: Dict) -> Path:
    from .export import metadata_path

    meta = dict(fp32_meta)
    meta.update(precision="int8", onnx_sha256=sha256_file(int8_onnx), quantization=report,
                parent_sha256=fp32_meta.get("onnx_sha256"))
    return write_metadata(metadata_path(int8_onnx), meta)
