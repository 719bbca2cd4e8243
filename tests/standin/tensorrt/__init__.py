"""A stand-in for the ``tensorrt`` module (TensorRT 10.3's Python API), for tests off the device.

WHAT IT PROVES. It implements, from the TensorRT 10 Python API reference and TensorRT's own Python
samples (v10.3.0), the calls fts-edge makes, with their documented signatures, return values and
failure modes, and nothing else: every class, member, method arity and enum value here is the real
10.3.0 bindings' (read from the wheel into tests/data/tensorrt-10.3.0-api.json;
tests/test_tensorrt_contract.py checks it), so code that calls a name TensorRT 10.3 does not have
fails here with AttributeError. Through
it, fts-edge's build -> metadata -> load -> execute path runs end to end in CI: tensor names,
shapes, dtypes, optimization profiles for dynamic batch (a build without one fails, as in
TensorRT), the timing cache round trip, the inspector's JSON, device buffers and the
set_input_shape -> set_tensor_address -> execute_async_v3 order (executing with an unset or
too-small address fails). The "engine" runs the ONNX it was built from with ONNX Runtime, reading
its input from and writing its output to the addresses it was given (the fake CUDA runtime's
"device" memory, see tests/standin/cuda).

WHAT IT DOES NOT PROVE. Anything TensorRT itself does: parsing and optimizing the graph, kernel
choice, FP16/INT8 numerics and speed, what the inspector reports for a real engine (its layers here
are derived from the ONNX: convolutions that read a DequantizeLinear are reported int8), plugin
loading, and behaviour on a real GPU or Jetson. Those wait for the first device run
(jetson/README.md lists it).

``FTS_STANDIN_TRT_VERSION`` sets ``__version__`` (to test refusal of TensorRT 8.6 or 11).
``FTS_STANDIN_REFUSE`` (comma-separated: set_tensor_address, add_optimization_profile,
set_timing_cache) makes those calls answer as TensorRT documents a refusal (False, -1, False)
without doing anything, so the callers' checks of return values are exercised.
``FTS_STANDIN_NO_INT8`` (comma-separated parts of ONNX node names): an INT8 build fails, as
TensorRT's does when it has no kernel for a layer, for every Conv so named that reads a
DequantizeLinear, logging TensorRT's message for the first ("Could not find any implementation
for node NAME"); whether real TensorRT 10.3 has INT8 kernels for a given 3D convolution is not known here.
"""
from __future__ import annotations

import enum
import json
import os
import struct

_MAGIC = b"FTS-TRT-STANDIN\x00"


def _version():
    return os.environ.get("FTS_STANDIN_TRT_VERSION", "10.3.0.26")


def _refused(call: str) -> bool:
    return call in os.environ.get("FTS_STANDIN_REFUSE", "").split(",")


def __getattr__(name):  # __version__ follows FTS_STANDIN_TRT_VERSION, also after import
    if name == "__version__":
        return _version()
    raise AttributeError(name)


class _Enum(enum.IntEnum):
    def __str__(self):
        return f"{type(self).__name__}.{self.name}"


class NetworkDefinitionCreationFlag(_Enum):
    EXPLICIT_BATCH = 0
    STRONGLY_TYPED = 1


class BuilderFlag(_Enum):
    FP16 = 0
    INT8 = 1


class MemoryPoolType(_Enum):
    WORKSPACE = 0


class ProfilingVerbosity(_Enum):
    LAYER_NAMES_ONLY = 0
    NONE = 1
    DETAILED = 2


class LayerInformationFormat(_Enum):
    ONELINE = 0
    JSON = 1


class TensorIOMode(_Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class DataType(_Enum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4


class ILogger:
    class Severity(_Enum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = (Severity.INTERNAL_ERROR, Severity.ERROR, Severity.WARNING,
                                                    Severity.INFO, Severity.VERBOSE)


class Logger(ILogger):
    def __init__(self, min_severity=ILogger.WARNING):
        self.min_severity = min_severity
        self.messages = []

    def log(self, severity, msg):
        self.messages.append((severity, msg))


class IHostMemory(bytes):
    """Serialized data; supports the buffer protocol like TensorRT's."""

    @property
    def nbytes(self):
        return len(self)


class ITensor:
    def __init__(self, name, shape, dtype=DataType.FLOAT):
        self.name, self.shape, self.dtype = name, tuple(shape), dtype


class INetworkDefinition:
    def __init__(self, flags):
        self.flags = flags
        self._inputs, self._outputs, self._onnx = [], [], None

    @property
    def num_inputs(self):
        return len(self._inputs)

    @property
    def num_outputs(self):
        return len(self._outputs)

    def get_input(self, index):
        return self._inputs[index]

    def get_output(self, index):
        return self._outputs[index]


class _ParserError:
    def __init__(self, desc):
        self._desc = desc

    def desc(self):
        return self._desc

    def __str__(self):
        return f"In node -1 (parse): {self._desc}"


class OnnxParser:
    def __init__(self, network, logger):
        self.network, self.logger, self._errors = network, logger, []

    @property
    def num_errors(self):
        return len(self._errors)

    def get_error(self, index):
        return self._errors[index]

    def parse_from_file(self, model):
        import onnx

        try:
            proto = onnx.load(model)
            onnx.checker.check_model(proto)
        except Exception as e:
            self._errors.append(_ParserError(f"not an ONNX model: {type(e).__name__}"))
            return False
        g = proto.graph
        inits = {i.name for i in g.initializer}

        def dims(v):
            return [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]

        self.network._inputs = [ITensor(v.name, dims(v)) for v in g.input if v.name not in inits]
        self.network._outputs = [ITensor(v.name, dims(v)) for v in g.output]
        self.network._onnx = proto.SerializeToString()
        return True


class IOptimizationProfile:
    def __init__(self):
        self._shapes = {}

    def set_shape(self, input, min, opt, max):  # noqa: A002 - TensorRT's own argument names
        if not (len(min) == len(opt) == len(max)) or any(a > b for a, b in zip(min, opt)) or \
                any(a > b for a, b in zip(opt, max)):
            raise ValueError("set_shape needs min <= opt <= max of one rank")
        self._shapes[input] = [tuple(min), tuple(opt), tuple(max)]


class ITimingCache:
    def __init__(self, entries):
        self._entries = dict(entries)

    def serialize(self):
        return IHostMemory(b"FTS-TIMING\x00" + json.dumps(self._entries).encode())


class IBuilderConfig:
    def __init__(self):
        self._flags, self._pools, self._profiles = set(), {}, []
        self._cache = None
        self.profiling_verbosity = ProfilingVerbosity.LAYER_NAMES_ONLY

    def set_memory_pool_limit(self, pool, pool_size):
        self._pools[MemoryPoolType(pool)] = int(pool_size)

    def set_flag(self, flag):
        self._flags.add(BuilderFlag(flag))

    def get_flag(self, flag):
        return BuilderFlag(flag) in self._flags

    def add_optimization_profile(self, profile):
        if _refused("add_optimization_profile"):
            return -1  # documented: the profile's index, or -1 if it is not valid
        self._profiles.append(profile)
        return len(self._profiles) - 1

    def create_timing_cache(self, serialized_timing_cache):
        blob = bytes(serialized_timing_cache)
        if not blob:
            return ITimingCache({})
        if not blob.startswith(b"FTS-TIMING\x00"):
            return None
        return ITimingCache(json.loads(blob[len(b"FTS-TIMING\x00"):]))

    def set_timing_cache(self, cache, ignore_mismatch):
        if not isinstance(cache, ITimingCache):
            raise TypeError("set_timing_cache(): incompatible function arguments")
        if _refused("set_timing_cache"):
            return False
        self._cache = cache
        return True

    def get_timing_cache(self):
        return self._cache


class Builder:
    platform_has_fast_fp16 = True
    platform_has_fast_int8 = True

    def __init__(self, logger):
        self.logger = logger

    def create_network(self, flags=0):
        return INetworkDefinition(int(flags))

    def create_builder_config(self):
        return IBuilderConfig()

    def create_optimization_profile(self):
        return IOptimizationProfile()

    def build_serialized_network(self, network, config):
        if network._onnx is None:
            self.logger.log(ILogger.ERROR, "network has no layers")
            return None
        dynamic = [t.name for t in network._inputs if any(d < 0 for d in t.shape)]
        profile = {}
        for p in config._profiles:
            profile.update(p._shapes)
        missing = [n for n in dynamic if n not in profile]
        if missing:  # TensorRT: "Network has dynamic or shape inputs, but no optimization profile has been defined."
            self.logger.log(ILogger.ERROR, f"no optimization profile for dynamic inputs {missing}")
            return None
        strongly = bool(network.flags & (1 << int(NetworkDefinitionCreationFlag.STRONGLY_TYPED)))
        if strongly and config._flags & {BuilderFlag.FP16, BuilderFlag.INT8}:
            self.logger.log(ILogger.ERROR, "precision flags are not allowed in a strongly typed network")
            return None
        no_int8 = [x for x in os.environ.get("FTS_STANDIN_NO_INT8", "").split(",") if x]
        if no_int8 and BuilderFlag.INT8 in config._flags:
            import onnx

            g = onnx.load_from_string(network._onnx).graph
            dq = {n.output[0] for n in g.node if n.op_type == "DequantizeLinear"}
            bad = [n.name for n in g.node if n.op_type == "Conv" and n.input and n.input[0] in dq
                   and any(x in n.name for x in no_int8)]
            if bad:  # a build stops at the first layer it has no kernel for
                self.logger.log(ILogger.ERROR, "[standin] Error Code 10: Internal Error (Could not find any "
                                f"implementation for node {bad[0]}.)")
                return None
        if config._cache is not None:
            config._cache._entries[f"build{len(config._cache._entries)}"] = sorted(f.name for f in config._flags)
        from cuda.bindings import runtime as rt  # the device the engine is built for

        props = rt.cudaDeviceProp()  # read directly: the build works whichever CUDA binding the caller uses
        header = {"version": _version(), "gpu": props.name.decode(), "cc": [props.major, props.minor],
                  "flags": sorted(f.name for f in config._flags), "strongly_typed": strongly,
                  "detailed": config.profiling_verbosity == ProfilingVerbosity.DETAILED,
                  "inputs": [[t.name, list(t.shape)] for t in network._inputs],
                  "outputs": [[t.name, list(t.shape)] for t in network._outputs],
                  "profile": {k: [list(s) for s in v] for k, v in profile.items()}}
        h = json.dumps(header).encode()
        return IHostMemory(_MAGIC + struct.pack("<I", len(h)) + h + network._onnx)


class Runtime:
    def __init__(self, logger):
        self.logger = logger

    def deserialize_cuda_engine(self, serialized_engine):
        blob = bytes(serialized_engine)
        if not blob.startswith(_MAGIC):
            self.logger.log(ILogger.ERROR, "the engine plan file is not compatible with this version of TensorRT")
            return None
        n = struct.unpack("<I", blob[len(_MAGIC):len(_MAGIC) + 4])[0]
        header = json.loads(blob[len(_MAGIC) + 4:len(_MAGIC) + 4 + n])
        if header["version"] != _version():
            self.logger.log(ILogger.ERROR, f"engine built with TensorRT {header['version']}, this is {_version()}")
            return None
        return ICudaEngine(header, blob[len(_MAGIC) + 4 + n:])


class ICudaEngine:
    def __init__(self, header, onnx_bytes):
        self._h, self._onnx = header, onnx_bytes
        self._io = [(name, TensorIOMode.INPUT, shape) for name, shape in header["inputs"]] + \
                   [(name, TensorIOMode.OUTPUT, shape) for name, shape in header["outputs"]]

    @property
    def num_io_tensors(self):
        return len(self._io)

    @property
    def num_optimization_profiles(self):
        return 1

    def get_tensor_name(self, index):
        return self._io[index][0]

    def _find(self, name):
        for io in self._io:
            if io[0] == name:
                return io
        raise KeyError(f"no tensor named {name!r}")

    def get_tensor_mode(self, name):
        return self._find(name)[1]

    def get_tensor_shape(self, name):
        return tuple(self._find(name)[2])

    def get_tensor_dtype(self, name):
        self._find(name)
        return DataType.FLOAT

    def get_tensor_profile_shape(self, name, profile_index):
        if name not in self._h["profile"]:
            raise ValueError(f"{name} has no optimization profile shapes")
        return [tuple(s) for s in self._h["profile"][name]]

    def create_execution_context(self):
        return IExecutionContext(self)

    def create_engine_inspector(self):
        return EngineInspector(self)


class IExecutionContext:
    def __init__(self, engine):
        import onnxruntime as ort

        self.engine = engine
        self._session = ort.InferenceSession(engine._onnx, providers=["CPUExecutionProvider"])
        self._shapes = {n: tuple(s) for n, mode, s in engine._io if mode == TensorIOMode.INPUT}
        self._addresses = {}

    def set_input_shape(self, name, shape):
        want = self.engine._find(name)[2]
        shape = tuple(int(d) for d in shape)
        if len(shape) != len(want) or any(w >= 0 and w != s for w, s in zip(want, shape)):
            return False
        if name in self.engine._h["profile"]:
            lo, _, hi = self.engine._h["profile"][name]
            if any(s < a or s > b for s, a, b in zip(shape, lo, hi)):
                return False
        self._shapes[name] = shape
        return True

    def get_tensor_shape(self, name):
        mode = self.engine._find(name)[1]
        if mode == TensorIOMode.INPUT:
            return self._shapes[name]
        batch = next(iter(self._shapes.values()))[0]
        shape = list(self.engine._find(name)[2])
        return tuple(batch if d < 0 else d for d in shape)

    def set_tensor_address(self, name, memory):
        self.engine._find(name)
        if _refused("set_tensor_address") or int(memory) == 0:
            return False  # documented: False where the address cannot be set (null, misaligned)
        self._addresses[name] = int(memory)
        return True

    def execute_async_v3(self, stream_handle):
        import numpy as np

        from cuda.bindings import runtime as rt

        feeds = {}
        for name, mode, _ in self.engine._io:
            if name not in self._addresses or any(d < 0 for d in self.get_tensor_shape(name)):
                return False
        for name, mode, _ in self.engine._io:
            shape = self.get_tensor_shape(name)
            nbytes = int(np.prod(shape)) * 4
            if not rt._is_device(self._addresses[name], nbytes):
                return False  # not device memory of that size: TensorRT would fault
            if mode == TensorIOMode.INPUT:
                feeds[name] = rt._read(self._addresses[name], nbytes).view(np.float32).reshape(shape).copy()
        outs = self._session.run(None, feeds)
        for (name, mode, _), out in zip([io for io in self.engine._io if io[1] == TensorIOMode.OUTPUT], outs):
            rt._write(self._addresses[name], np.ascontiguousarray(out, np.float32))
        rt._stream_used(int(stream_handle))
        return True


class EngineInspector:
    def __init__(self, engine):
        self.engine = engine

    def get_engine_information(self, format):  # noqa: A002 - TensorRT's own argument name
        import onnx

        g = onnx.load_from_string(self.engine._onnx).graph
        if not self.engine._h["detailed"]:
            return json.dumps({"Layers": [n.name or n.op_type for n in g.node], "Bindings": [io[0] for io in self.engine._io]})
        dq = {n.output[0] for n in g.node if n.op_type == "DequantizeLinear"}
        int8 = "INT8" in self.engine._h["flags"]
        layers = []
        for n in g.node:
            if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
                continue
            quant = int8 and bool(n.input) and n.input[0] in dq
            fmt = "Int8" if quant else "Half" if "FP16" in self.engine._h["flags"] else "Float"
            row = {"Name": n.name, "LayerType": "CaskConvolution" if n.op_type == "Conv" else n.op_type,
                   "Inputs": [{"Name": n.input[0], "Format/Datatype": fmt}] if n.input else [],
                   "Outputs": [{"Name": o, "Format/Datatype": fmt} for o in n.output],
                   "TacticName": "standin_" + n.op_type.lower()}
            if n.op_type == "Conv":
                row.update(ParameterType="Convolution", Weights={"Type": "Int8" if quant else fmt})
            layers.append(row)
        return json.dumps({"Layers": layers, "Bindings": [io[0] for io in self.engine._io]})
