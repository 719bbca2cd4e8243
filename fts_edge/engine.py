"""TensorRT engines: build on the device, refuse engines made for another TensorRT or GPU, and
report the precision each layer really got.

Written against the TensorRT 10 Python API (JetPack 6 ships 10.3). ``tensorrt`` is imported inside
the functions that need it, so this module imports anywhere. INT8 engines are built from the Q/DQ
ONNX as *strongly typed* networks (explicit quantization: the path TensorRT 10 recommends; the
implicit calibrators were deprecated in 10.1 and removed from Python in 11); FP16 engines from the
fp32 ONNX with the FP16 builder flag. Nothing here runs without TensorRT and a GPU.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict, Optional

from .artifacts import atomic_write_bytes, sha256_file
from .errors import EngineError, TensorRTUnavailable

log = logging.getLogger(__name__)


def tensorrt_or_none():
    """The tensorrt module, or None where it is not installed (or broken)."""
    try:
        import tensorrt as trt  # noqa: F401
        return trt
    except Exception:  # ImportError, or a wheel that finds no libnvinfer
        return None


def gpu_identity() -> Optional[Dict]:
    """Name and compute capability of GPU 0, from torch (if it sees CUDA) or pycuda; None if none."""
    try:
        import torch
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            return {"name": p.name, "compute_capability": f"{p.major}.{p.minor}"}
    except Exception:
        pass
    try:
        import pycuda.driver as cuda
        cuda.init()
        d = cuda.Device(0)
        major, minor = d.compute_capability()
        return {"name": d.name(), "compute_capability": f"{major}.{minor}"}
    except Exception:
        return None


def engine_path(onnx_path, precision: str) -> Path:
    """engines/NAME.onnx -> engines/NAME.{fp16,int8}.engine (NAME.int8.onnx -> NAME.int8.engine)."""
    p = Path(onnx_path)
    stem = p.name[:-len(".onnx")] if p.name.endswith(".onnx") else p.stem
    for suffix in (".int8", ".fp16"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return p.with_name(f"{stem}.{precision}.engine")


def engine_identity(trt, precision: str, onnx_sha256: str) -> Dict:
    gpu = gpu_identity() or {}
    return {"tensorrt": trt.__version__, "gpu": gpu.get("name"), "compute_capability": gpu.get("compute_capability"),
            "precision": precision, "onnx_sha256": onnx_sha256}


def check_engine_metadata(meta: Dict, here: Dict, path) -> None:
    """Refuse an engine built for another TensorRT, GPU, precision or ONNX, saying how to rebuild."""
    for key, what in (("tensorrt", "TensorRT"), ("compute_capability", "GPU compute capability"),
                      ("gpu", "GPU"), ("onnx_sha256", "ONNX model"), ("precision", "precision")):
        if meta.get(key) != here.get(key):
            raise EngineError(f"{path}: built for {what} {meta.get(key)!r}, this machine has {here.get(key)!r}; "
                              f"rebuild it here: fts-edge build-engine <model.onnx> --{here.get('precision', 'fp16')}")


def read_engine_metadata(path) -> Dict:
    from .export import metadata_path

    mp = metadata_path(path)
    if not mp.is_file():
        raise EngineError(f"{path}: no metadata beside the engine ({mp.name}); rebuild it with fts-edge build-engine")
    try:
        return json.loads(mp.read_text())
    except ValueError as e:
        raise EngineError(f"{mp}: unreadable engine metadata ({e})")


def build_engine(onnx_path, precision: str, workspace_mb: int = 1024, timing_cache: Optional[str] = None,
                 force: bool = False) -> Dict:
    """Build (or reuse) NAME.{precision}.engine from an ONNX on this machine's GPU.

    precision "int8" expects the Q/DQ ONNX and builds a strongly typed network; "fp16" sets the
    FP16 flag on the fp32 ONNX. Raises TensorRTUnavailable where TensorRT or a GPU is missing.
    """
    trt = tensorrt_or_none()
    if trt is None:
        raise TensorRTUnavailable("the engine step needs TensorRT on the target device (pip install "
                                  "'fts-edge[trt]' on a GPU host; JetPack ships it on a Jetson)")
    if gpu_identity() is None:
        raise TensorRTUnavailable("TensorRT is installed but no CUDA GPU is visible; build the engine on the device")
    onnx_path = Path(onnx_path)
    onnx_sha = sha256_file(onnx_path)
    out = engine_path(onnx_path, precision)
    here = engine_identity(trt, precision, onnx_sha)
    if out.exists() and not force:
        try:
            check_engine_metadata(read_engine_metadata(out), here, out)
            log.info("reusing %s (metadata matches this TensorRT, GPU and ONNX)", out)
            return {"engine": str(out), "reused": True, **here, "layers": layer_precisions_of(out)}
        except EngineError as e:
            log.info("rebuilding: %s", e)

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if precision == "int8":
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"{onnx_path}: TensorRT's ONNX parser refused it: {errors[:300]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # so the inspector can tell layer precisions
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision != "int8":
        raise ValueError(f"precision must be fp16 or int8, got {precision!r}")
    cache = None
    if timing_cache:
        blob = Path(timing_cache).read_bytes() if Path(timing_cache).exists() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"{onnx_path}: TensorRT could not build a {precision} engine (see its log above)")
    atomic_write_bytes(out, bytes(serialized))
    if cache is not None:
        atomic_write_bytes(timing_cache, bytes(cache.serialize()))
    layers = layer_precisions_of(out)
    from .checkpoint import write_metadata
    from .export import metadata_path
    write_metadata(metadata_path(out), {**here, "onnx": str(onnx_path), "layers": layers})
    return {"engine": str(out), "reused": False, **here, "layers": layers}


def layer_precisions_of(engine_file) -> Dict:
    """Deserialise an engine and count its layers by the precision they really run in."""
    trt = tensorrt_or_none()
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(Path(engine_file).read_bytes())
    if engine is None:
        raise EngineError(f"{engine_file}: TensorRT cannot deserialise it (another TensorRT version or GPU?); rebuild it")
    info = engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
    return summarise_layer_info(json.loads(info))


def summarise_layer_info(info: Dict) -> Dict:
    """From the inspector's JSON (ProfilingVerbosity.DETAILED): per-layer output precision and a
    count by precision, with the convolutions singled out (3D convolutions that silently stay in
    FP16 under INT8 flags are the known trap)."""
    counts: Dict[str, int] = {}
    convs: Dict[str, int] = {}
    layers = []
    for layer in info.get("Layers", []):
        if isinstance(layer, str):  # LAYER_NAMES_ONLY: no precision to report
            layers.append({"name": layer, "precision": "unknown"})
            continue
        outs = layer.get("Outputs", [])
        fmt = " ".join(str(o.get("Format/Datatype", "")) for o in outs).lower()
        prec = next((p for p, keys in (("int8", ("int8",)), ("fp16", ("fp16", "half")), ("fp32", ("fp32", "float")))
                     if any(k in fmt for k in keys)), "unknown")
        kind = str(layer.get("LayerType", ""))
        counts[prec] = counts.get(prec, 0) + 1
        if "conv" in kind.lower() or "conv" in str(layer.get("Name", "")).lower():
            convs[prec] = convs.get(prec, 0) + 1
        layers.append({"name": layer.get("Name"), "type": kind, "precision": prec})
    return {"by_precision": counts, "convolutions_by_precision": convs, "layers": layers}
