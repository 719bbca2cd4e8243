"""TensorRT engines: built on the device from an ONNX, refused where they were built for another
TensorRT or GPU, and reported layer by layer with the precision each really runs in.

Written against the TensorRT 10 Python API as JetPack 6.1/6.2 ship it (10.3); TensorRT 8.6
(JetPack 6.0) and 11 are refused with a message. ``tensorrt`` is imported inside the functions
that need it, so this module imports anywhere, without torch.

Precisions:
- fp16: the fp32 ONNX with the FP16 builder flag.
- int8: the Q/DQ ONNX (explicit quantization: the scales are in the graph, no calibrator),
  with the INT8 and FP16 flags, so what the Q/DQ nodes do not quantize runs in FP16 rather than
  FP32. (A strongly typed network would keep that remainder in the ONNX's FP32.)

The engine's metadata is the ONNX's bundle (classes, ClipSpec, input/output names) plus the
engine's identity: TensorRT version, GPU, compute capability, the engine's own sha256 and the
ONNX's, and the per-layer report.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..core.artifacts import atomic_write_bytes, sha256_file
from ..core.errors import CheckpointError, EngineError, TensorRTUnavailable
from .bundle import load_bundle, metadata_path, write_metadata

log = logging.getLogger(__name__)
SUPPORTED = "TensorRT 10.x (JetPack 6.1/6.2 ship 10.3)"
PRECISIONS = ("fp16", "int8")


def tensorrt_or_none():
    """The tensorrt module, or None where it is not installed (or broken)."""
    try:
        import tensorrt as trt  # noqa: F401
        return trt
    except Exception:  # ImportError, or a wheel that finds no libnvinfer
        return None


def trt_version(trt) -> Tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", str(trt.__version__))[:3])


def require_tensorrt():
    """tensorrt 10.x, or a clear error: absent (exit 3), too old (JetPack 6.0's 8.6) or too new (11)."""
    trt = tensorrt_or_none()
    if trt is None:
        raise TensorRTUnavailable("the engine step needs TensorRT on the target device (a Jetson: JetPack 6.1 or "
                                  "later ships it; make the venv with --system-site-packages, see jetson/README.md; "
                                  "a PC: pip install 'fts-edge[trt]')")
    v = trt_version(trt)
    if v[:1] < (10,):
        raise EngineError(f"TensorRT {trt.__version__} is too old: fts-edge needs {SUPPORTED}. JetPack 6.0 ships 8.6: "
                          "upgrade to JetPack 6.1 or later")
    if v[:1] >= (11,):
        raise EngineError(f"TensorRT {trt.__version__} is not supported yet: fts-edge needs {SUPPORTED} "
                          "(pip install 'tensorrt>=10,<11')")
    return trt


def gpu_identity() -> Optional[Dict]:
    from .cudamem import gpu_identity as ask

    return ask()


def engine_path(onnx_path, precision: str) -> Path:
    """engines/NAME.onnx -> engines/NAME.{fp16,int8}.engine (NAME.int8.onnx -> NAME.int8.engine)."""
    p = Path(onnx_path)
    stem = p.name[:-len(".onnx")] if p.name.endswith(".onnx") else p.stem
    for suffix in (".int8", ".fp16"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return p.with_name(f"{stem}.{precision}.engine")


def board_model() -> Optional[str]:
    """The board's device-tree model ("NVIDIA Jetson AGX Orin Developer Kit"); None off a Jetson."""
    from .doctor import jetson_info

    return (jetson_info() or {}).get("model")


def device_identity(trt) -> Dict:
    """What an engine is specific to: TensorRT's version and the GPU (name, compute capability,
    multiprocessors), with the board's model on a Jetson, where every Orin module reports the
    same GPU name and compute capability; the memory is recorded, not compared."""
    gpu = gpu_identity() or {}
    return {"tensorrt": str(trt.__version__), "gpu": gpu.get("name"),
            "compute_capability": gpu.get("compute_capability"), "multiprocessors": gpu.get("multiprocessors"),
            "memory_mb": gpu.get("memory_mb"), "board": board_model()}


def fast_fp16(compute_capability: Optional[str]) -> Optional[bool]:
    """Whether a GPU of this compute capability has fast FP16 (native half arithmetic: 5.3, 6.0,
    6.2 and 7.0 on, every Jetson since the TX1; not 6.1, Pascal's consumer cards); None unknown."""
    m = re.fullmatch(r"(\d+)\.(\d+)", str(compute_capability or ""))
    if not m:
        return None
    cc = (int(m.group(1)), int(m.group(2)))
    return cc in ((5, 3), (6, 0), (6, 2)) or cc >= (7, 0)


def read_engine_metadata(path) -> Dict:
    """An engine's checked bundle (``bundle.load_bundle``: its JSON, bound to the file by sha256)."""
    return load_bundle(path)


def check_engine(meta: Dict, here: Dict, path) -> None:
    """Refuse an engine built for another TensorRT or GPU, saying how to rebuild it (that the file
    is the one its metadata describes, load_bundle has checked)."""
    eng = meta["engine"]
    rebuild = (f"rebuild it here: fts-edge build-engine {meta.get('rebuild_from') or '<model.onnx>'} "
               f"--{meta.get('precision', 'fp16')}")
    for key, what in (("tensorrt", "TensorRT"), ("compute_capability", "GPU compute capability"), ("gpu", "GPU"),
                      ("multiprocessors", "GPU multiprocessor count"), ("board", "board")):
        if key in ("multiprocessors", "board") and key not in eng:
            continue  # an engine recorded before these were: TensorRT's and the GPU's checks stand
        if eng.get(key) != here.get(key):
            raise EngineError(f"{path}: built for {what} {eng.get(key)!r}, this machine has {here.get(key)!r}; "
                              f"{rebuild}")


class Int8LayersUnbuildable(EngineError):
    """TensorRT built no INT8 engine and its errors name these convolutions of the Q/DQ ONNX:
    quantizing again with them kept in float may build (build-engine does that once)."""

    def __init__(self, message: str, nodes: List[str]):
        super().__init__(message)
        self.nodes = nodes


def _capturing_logger(trt, verbose: bool):
    """A TensorRT logger (an ILogger subclass, as the Python API documents) that passes TensorRT's
    messages to Python's logging and keeps the errors, so a failed build can say what failed."""

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: List[str] = []

        def log(self, severity, msg):
            if severity in (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR):
                self.errors.append(str(msg))
                log.error("TensorRT: %s", msg)
            elif severity == trt.ILogger.WARNING:
                log.warning("TensorRT: %s", msg)
            elif verbose:
                log.debug("TensorRT: %s", msg)

    return Logger()


def nodes_named_in(text: str, names: List[str]) -> List[str]:
    """The names (ONNX node names) that ``text`` mentions as whole names: TensorRT's messages name
    a layer by its ONNX node, alone or fused ("a + b + c")."""
    return [n for n in names if n and re.search(rf"(?<![\w/.:-]){re.escape(n)}(?![\w/:-])", text)]


class EngineBuilder:
    """TensorRT's builder, network, ONNX parser and config for one build (the samples' shape)."""

    def __init__(self, trt, workspace_mb: int = 1024, verbose: bool = False):
        self.trt = trt
        self.logger = _capturing_logger(trt, verbose)
        self.builder = trt.Builder(self.logger)
        self.config = self.builder.create_builder_config()
        self.config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
        self.config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # the inspector then reports precisions
        self.network = None
        self.parser = None

    def create_network(self, onnx_path) -> Dict:
        """Parse the ONNX; add an optimization profile where its batch axis is dynamic."""
        self.network = self.builder.create_network(0)
        self.parser = self.trt.OnnxParser(self.network, self.logger)
        if not self.parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(self.parser.get_error(i)) for i in range(self.parser.num_errors))
            raise EngineError(f"{onnx_path}: TensorRT's ONNX parser refused it: {errors[:300]}")
        return {"inputs": [self.network.get_input(i).name for i in range(self.network.num_inputs)],
                "outputs": [self.network.get_output(i).name for i in range(self.network.num_outputs)]}

    def add_batch_profile(self, max_batch: int) -> Optional[Dict]:
        """A dynamic batch axis needs an optimization profile: batch 1 to ``max_batch``, tuned for 1."""
        shapes = {}
        for i in range(self.network.num_inputs):
            tensor = self.network.get_input(i)
            dims = tuple(tensor.shape)
            if any(d < 0 for d in dims[1:]):
                raise EngineError(f"input {tensor.name} has dynamic dimensions besides the batch ({dims}); export with "
                                  "a static clip shape")
            if dims[0] < 0:
                rest = dims[1:]
                shapes[tensor.name] = ((1, *rest), (1, *rest), (max_batch, *rest))
        if not shapes:
            return None
        profile = self.builder.create_optimization_profile()
        for name, (lo, opt, hi) in shapes.items():
            profile.set_shape(name, lo, opt, hi)
        if self.config.add_optimization_profile(profile) < 0:  # the profile's index, or -1 when invalid
            raise EngineError(f"TensorRT refused the optimization profile (batch 1 to {max_batch} for "
                              f"{', '.join(shapes)}); try a smaller --max-batch")
        return {"min_batch": 1, "opt_batch": 1, "max_batch": max_batch}

    def set_precision(self, precision: str, compute_capability: Optional[str] = None):
        """FP16 always (INT8 also for "int8"). Whether the GPU has fast FP16 is read from its compute
        capability (TensorRT 10.5 deprecates IBuilder.platform_has_fast_fp16 for this)."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if fast_fp16(compute_capability) is False:
            log.warning("this GPU (compute capability %s) has no fast FP16: the engine will be slow",
                        compute_capability)
        self.config.set_flag(self.trt.BuilderFlag.FP16)
        if precision == "int8":
            self.config.set_flag(self.trt.BuilderFlag.INT8)

    def use_timing_cache(self, path: Optional[str]):
        """Load the timing cache (or start an empty one), as TensorRT's samples do; a cache from
        another TensorRT or GPU is ignored rather than fatal."""
        if not path:
            return
        blob = Path(path).read_bytes() if Path(path).is_file() else b""
        cache = self.config.create_timing_cache(blob)
        if cache is None and blob:  # a file TensorRT cannot read: start an empty cache instead
            log.warning("timing cache %s: TensorRT cannot read it; starting an empty one", path)
            cache = self.config.create_timing_cache(b"")
        if cache is None or not self.config.set_timing_cache(cache, True):
            log.warning("timing cache %s: TensorRT did not take it; building without one", path)
            self.timing_cache_set = False
            return
        self.timing_cache_set = True

    timing_cache_set = False

    def save_timing_cache(self, path: Optional[str]):
        if path and self.timing_cache_set:
            atomic_write_bytes(path, bytes(memoryview(self.config.get_timing_cache().serialize())))

    def build(self, onnx_path=None, precision: str = "fp16") -> bytes:
        """The serialized engine; where TensorRT makes none, an error with its first message, and
        for INT8 the convolutions its messages name (Int8LayersUnbuildable)."""
        serialized = self.builder.build_serialized_network(self.network, self.config)
        if serialized is None:
            first = self.logger.errors[0] if self.logger.errors else "no message"
            msg = f"TensorRT could not build the {precision} engine: {first[:300]}"
            if precision == "int8" and onnx_path is not None:
                from .quantize import conv_nodes

                nodes = nodes_named_in("\n".join(self.logger.errors), conv_nodes(onnx_path))
                if nodes:
                    raise Int8LayersUnbuildable(msg, nodes)
            raise EngineError(msg)
        return bytes(memoryview(serialized))


def build_tensorrt_engine(
    onnx_path,
    precision: str,
    workspace_mb: int = 1024,
    timing_cache: Optional[str] = None,
    force: bool = False,
    max_batch: int = 8,
    out=None,
    rebuild_from=None,
    stage: Optional[str] = None,
) -> Dict:
    """Build (or reuse) NAME.{precision}.engine from an ONNX on this machine's GPU, with its metadata.

    ``stage`` builds one stage of a streaming student: ``onnx_path`` is then the main (frame
    stage) ONNX, whose bundle describes the stage file beside it (streamplan.stage_file), and the
    engine's metadata is that bundle with ``streaming_stage`` set. Raises TensorRTUnavailable where
    TensorRT or a GPU is missing, EngineError for a TensorRT outside 10.x or an ONNX it refuses.

    Args:
        onnx_path: the ONNX (fp32 for FP16, the Q/DQ one for INT8).
        precision: fp16 or int8.
        workspace_mb: TensorRT's workspace.
        timing_cache: a timing cache file, reused across builds, or None.
        force: rebuild an engine that matches.
        max_batch: the largest batch of a dynamic batch axis's profile.
        out: the engine's path (default NAME.{precision}.engine).
        rebuild_from: the ONNX a user rebuilds from (named in messages).
        stage: a streaming student's stage, or None.

    Returns:
        {"engine": path, "reused": bool, "metadata": the engine's bundle, "layers": the report}.
    """
    trt = require_tensorrt()
    if gpu_identity() is None:
        raise TensorRTUnavailable("TensorRT is installed but no CUDA GPU answers (cuda-python or pycuda); build "
                                  "the engine on the device")
    onnx_path = Path(onnx_path)
    onnx_meta = load_bundle(onnx_path)
    if stage is not None:
        from .streamplan import STAGES, stage_file

        want = {st["name"]: st.get("sha256") for st in onnx_meta.get("streaming", {}).get("stages", [])}
        if stage not in want:
            raise EngineError(f"{onnx_path}: no {stage} stage in its metadata (stages {', '.join(want) or 'none'})")
        if stage != STAGES[0]:
            onnx_path = stage_file(onnx_path, stage)
            onnx_meta["onnx_sha256"] = want[stage]
        onnx_meta["streaming_stage"] = stage
    onnx_sha = sha256_file(onnx_path)
    if onnx_meta.get("onnx_sha256") and onnx_meta["onnx_sha256"] != onnx_sha:
        raise EngineError(f"{onnx_path}: the file is not the model its metadata describes (sha256 differs); "
                          "export it again")
    out = Path(out) if out else engine_path(onnx_path, precision)
    here = device_identity(trt)
    if out.exists() and not force:
        try:
            old = read_engine_metadata(out)
            check_engine(old, here, out)
            if old.get("parent_onnx_sha256") != onnx_sha or old.get("precision") != precision:
                raise EngineError("built from another ONNX or precision")
            log.info("reusing %s (it matches this TensorRT, GPU and ONNX)", out)
            return {"engine": str(out), "reused": True, "metadata": old}
        except (EngineError, CheckpointError) as e:
            log.info("rebuilding %s: %s", out, e)
    t0 = time.perf_counter()
    b = EngineBuilder(trt, workspace_mb)
    io = b.create_network(onnx_path)
    profile = b.add_batch_profile(max_batch)
    b.set_precision(precision, here.get("compute_capability"))
    b.use_timing_cache(timing_cache)
    blob = b.build(onnx_path, precision)
    seconds = time.perf_counter() - t0
    layers = layer_report(inspect_engine(trt, blob))
    meta = {k: v for k, v in onnx_meta.items()
            if k not in ("onnx_sha256", "parity", "quantization", "simplified", "parent", "parent_sha256")}
    meta.update(precision=precision, input_names=io["inputs"], output_names=io["outputs"],
                parent_onnx=str(onnx_path), parent_onnx_sha256=onnx_sha, layers=layers["summary"],
                rebuild_from=str(rebuild_from or onnx_path),
                engine={**here, "sha256": _sha256_bytes(blob), "workspace_mb": workspace_mb, "profile": profile,
                        "build_seconds": round(seconds, 1), "built": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    # engine and metadata committed together: both written to temporary names, then renamed
    tmp_engine = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp_meta = metadata_path(out).with_name(f".{metadata_path(out).name}.{os.getpid()}.tmp")
    try:
        atomic_write_bytes(tmp_engine, blob)
        write_metadata(tmp_meta, meta)
        os.replace(tmp_engine, out)
        os.replace(tmp_meta, metadata_path(out))
    finally:
        for leftover in (tmp_engine, tmp_meta):
            if leftover.exists():
                leftover.unlink()
    b.save_timing_cache(timing_cache)
    return {"engine": str(out), "reused": False, "metadata": meta, "layers": layers}


def _sha256_bytes(blob: bytes) -> str:
    import hashlib

    return hashlib.sha256(blob).hexdigest()


def inspect_engine(trt, blob: bytes) -> Dict:
    """The engine inspector's JSON (per layer, with ProfilingVerbosity.DETAILED at build time)."""
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(blob)
    if engine is None:
        raise EngineError("TensorRT cannot deserialise the engine it just built")
    return json.loads(engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON))


# -- what each layer really runs in -----------------------------------------------------------
_PRECISION_WORDS = (("int8", ("int8",)), ("fp8", ("fp8",)), ("int4", ("int4",)), ("fp16", ("fp16", "half")),
                    ("bf16", ("bf16",)), ("int32", ("int32",)), ("int64", ("int64",)), ("bool", ("bool",)),
                    ("fp32", ("fp32", "float")))
CONV_TYPES = ("Convolution", "CaskConvolution", "CudaDepthwiseConvolution", "CaskDeconvolution", "Deconvolution",
              "CudnnConvolution", "CaskGemmConvolution")


def tensor_precision(fmt: str) -> str:
    """A tensor's type from the inspector's "Format/Datatype": long forms ("Thirty-two wide
    channel vectorized row major Int8 format", "Row major linear FP32") and short ones ("Half",
    "Int8", "Float"). "unknown" for "N/A due to dynamic shapes" and the like."""
    f = str(fmt).lower()
    for name, words in _PRECISION_WORDS:
        if any(re.search(rf"(?<![a-z0-9]){w}(?![a-z0-9])", f) for w in words):
            return name
    return "unknown"


def _is_conv(layer: Dict) -> bool:
    """A convolution, fused ones included: TensorRT reports a convolution fused with its activation
    and pooling as one "ConvActPool" layer whose convolution fields carry a "Conv" prefix."""
    return (layer.get("ParameterType") in ("Convolution", "Deconvolution") or layer.get("LayerType") in CONV_TYPES
            or layer.get("ConvParameterType") in ("Convolution", "Deconvolution"))


def layer_report(info: Dict) -> Dict:
    """Per layer: type, input and output precisions, weight type and tactic; and a summary of how
    many convolutions run int8 kernels (int8 data in and int8 weights), fp16 or fp32.

    A convolution counts as int8 only when its data input is int8 (and its weights, where the
    inspector names their type): a fused convolution whose output alone is int8 does not."""
    layers: List[Dict] = []
    names_only = False
    for layer in info.get("Layers", []):
        if isinstance(layer, str):  # ProfilingVerbosity.LAYER_NAMES_ONLY: nothing to report but the name
            names_only = True
            layers.append({"name": layer, "type": None, "inputs": [], "outputs": [], "conv": None})
            continue
        ins = [tensor_precision(t.get("Format/Datatype", "")) for t in layer.get("Inputs", []) if isinstance(t, dict)]
        outs = [tensor_precision(t.get("Format/Datatype", "")) for t in layer.get("Outputs", []) if isinstance(t, dict)]
        w = layer.get("Weights", layer.get("ConvWeights"))
        weights = tensor_precision(w.get("Type", "")) if isinstance(w, dict) else None
        row = {"name": layer.get("Name"), "type": layer.get("LayerType"), "inputs": ins, "outputs": outs,
               "weights": weights, "tactic": layer.get("TacticName") or layer.get("TacticValue"),
               "conv": _is_conv(layer)}
        if row["conv"]:
            data_in = ins[0] if ins else "unknown"
            if data_in == "int8" and weights in (None, "int8"):
                row["compute"] = "int8"
            elif data_in in ("fp16", "fp32", "bf16"):
                row["compute"] = data_in
            else:
                row["compute"] = "unknown"
        layers.append(row)
    convs = [r for r in layers if r.get("conv")]
    by_compute: Dict[str, int] = {}
    for r in convs:
        by_compute[r["compute"]] = by_compute.get(r["compute"], 0) + 1
    by_input: Dict[str, int] = {}
    for r in layers:
        p = r["inputs"][0] if r["inputs"] else "unknown"
        by_input[p] = by_input.get(p, 0) + 1
    summary = {"layers": len(layers), "convolutions": len(convs), "convolutions_by_precision": by_compute,
               "convolutions_not_int8": [r["name"] for r in convs if r["compute"] != "int8"]
               if by_compute.get("int8") else [],
               "layers_by_input_precision": by_input,
               "reformats": sum(1 for r in layers if r.get("type") == "Reformat"),
               "detail": "layer names only (built without ProfilingVerbosity.DETAILED)" if names_only else "detailed"}
    return {"summary": summary, "layers": layers}


def summary_line(summary: Dict) -> str:
    if summary.get("detail", "").startswith("layer names only"):
        return f"{summary['layers']} layers; precisions unknown ({summary['detail']})"
    by = summary.get("convolutions_by_precision", {})
    parts = ", ".join(f"{n} {p}" for p, n in sorted(by.items(), key=lambda kv: -kv[1])) or "none"
    line = (f"{summary['convolutions']} convolutions: {parts}; {summary['layers']} layers, "
            f"{summary['reformats']} reformats")
    rest = summary.get("convolutions_not_int8") or []
    if rest:
        line += f"; not in int8: {', '.join(rest[:4])}{f' and {len(rest) - 4} more' if len(rest) > 4 else ''}"
    return line
