"""One classifier interface over every backend: a TensorRT ``.engine``, an ``.onnx`` (ONNX Runtime,
CUDA provider where present, else CPU) or a checkpoint (PyTorch). The backend is picked from the
artifact; classes and preprocessing come from its bundle metadata, never from the caller.

    clf = load_classifier("engines/student.int8.onnx")
    probs = clf.classify(clip)        # clip (3, T, H, W) or (N, 3, T, H, W) -> (N, classes)
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from ..core.errors import CheckpointError, EngineError
from ..data.clipspec import ClipSpec

log = logging.getLogger(__name__)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class Classifier:
    backend = "?"
    streaming = False  # a streaming student steps one frame at a time (StreamingClassifier)

    def __init__(self, meta: Dict, path):
        self.meta, self.path = meta, str(path)
        self.spec = ClipSpec.from_dict(meta["clip_spec"])
        self.classes: List[str] = list(meta["classes"])
        self.batch: Optional[int] = None  # a static batch size, if the artifact has one

    def logits(self, clips: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def check_io(self, input_dims, classes: Optional[int]) -> None:
        """The model's input shape must be the metadata's ClipSpec, its output width the class count."""
        want = self.spec.input_shape
        if tuple(input_dims) != want:
            raise CheckpointError(f"{self.path}: the model takes clips {tuple(input_dims)}, its metadata says "
                                  f"{want} (frames, size); the pair does not belong together")
        if classes is not None and classes != len(self.classes):
            raise CheckpointError(f"{self.path}: the model has {classes} outputs, its metadata names "
                                  f"{len(self.classes)} classes; the pair does not belong together")

    def close(self) -> None:
        """Free what the backend holds (device memory); the classifier is unusable afterwards."""

    def predict_logits(self, clip: np.ndarray) -> np.ndarray:
        """Logits for clips (3, T, H, W) or (N, 3, T, H, W): (N, classes). A static-batch model runs
        in chunks of its batch, the last one padded."""
        clips = np.asarray(clip, dtype=np.float32)
        if clips.ndim == 4:
            clips = clips[None]
        want = self.spec.input_shape
        if clips.ndim != 5 or tuple(clips.shape[1:]) != want:
            raise ValueError(f"{Path(self.path).name} takes clips (N, {', '.join(map(str, want))}), "
                             f"got {tuple(clips.shape)}")
        if self.batch and len(clips) != self.batch:
            out = []
            for i in range(0, len(clips), self.batch):
                chunk = clips[i:i + self.batch]
                pad = self.batch - len(chunk)
                if pad:
                    chunk = np.concatenate([chunk, np.zeros((pad, *want), np.float32)])
                out.append(self.logits(np.ascontiguousarray(chunk))[:self.batch - pad])
            return np.concatenate(out)
        return self.logits(np.ascontiguousarray(clips))

    def classify(self, clip: np.ndarray) -> np.ndarray:
        """Class probabilities (N, classes)."""
        return softmax(self.predict_logits(clip))

    def describe(self) -> str:
        return f"{self.backend} {Path(self.path).name} ({self.meta.get('precision', 'fp32')})"

    def cadence(self, every: int) -> int:
        """Frames between classifications in a live stream: the caller's ``every`` for a clip
        model (a window of the last T frames is classified that often)."""
        return every




class OnnxClassifier(Classifier):
    backend = "onnxruntime"

    def __init__(self, path, meta: Dict, providers: Optional[List[str]] = None, threads: int = 0):
        from .onnxrt import ort_session, static_batch

        super().__init__(meta, path)  # checked by load_bundle: input shape, output width, precision
        self.session = ort_session(path, providers, threads)
        self.input = self.session.get_inputs()[0]
        self.batch = static_batch(self.session)
        self.backend = f"onnxruntime-{self.session.get_providers()[0].replace('ExecutionProvider', '').lower()}"

    def logits(self, clips):
        return self.session.run(None, {self.input.name: clips})[0]


class StreamingClassifier(Classifier):
    """A streaming student (metadata ``streaming``) behind the same interface: its stage graphs
    stepped by ``streamplan.Stepper``, one stream per source.

    ``step_logits(frames, sources)`` takes one new frame (3, 1, S, S) per named source and keeps a
    state per source (``reset(source)`` forgets one); its logits are the newest layer4 emitted,
    those of a whole clip once a source has taken window + latency steps (``warm(source)``).
    ``predict_logits`` on whole clips steps each clip through a fresh state, so prediction,
    evaluation and the INT8 check score a streaming model exactly as they score a clip model.
    Subclasses give ``run_stage(k, feeds)``.
    """

    streaming = True

    def __init__(self, meta: Dict, path):
        super().__init__(meta, path)
        self.stream = meta["streaming"]
        self.window = int(self.stream["window"])
        self.batch = 1
        self.streams: Dict = {}

    def run_stage(self, k: int, feeds: Dict[str, np.ndarray]):
        raise NotImplementedError

    def _stepper(self, source):
        from .streamplan import Stepper

        if source not in self.streams:
            self.streams[source] = Stepper(self.run_stage, self.stream)
        return self.streams[source]

    def reset(self, source=0) -> None:
        self._stepper(source).reset()

    def warm(self, source=0) -> bool:
        return source in self.streams and self.streams[source].warm

    def forget(self, source) -> None:
        """Drop a stream's state (a tracked person who left): its memory goes with it."""
        self.streams.pop(source, None)

    def step_logits(self, frames: np.ndarray, sources: List) -> np.ndarray:
        out = []
        for frame, src in zip(np.asarray(frames, np.float32), sources):
            logits = self._stepper(src).step(np.ascontiguousarray(frame[None]))
            out.append(np.zeros(len(self.classes), np.float32) if logits is None else logits[0])  # not yet warm
        return np.stack(out)

    def logits(self, clips):
        from .streamplan import clip_logits

        s = self._stepper("clip")
        try:
            return np.stack([clip_logits(s, c) for c in clips])
        finally:
            self.streams.pop("clip", None)

    def cadence(self, every: int) -> int:
        """A streaming student steps on every frame of its clip's sampling, whatever ``every``
        says: its state must see each of them."""
        return self.spec.stride

    def describe(self) -> str:
        return (super().describe() + f", streaming (a clip of {self.window} frames, logits "
                f"{self.stream['latency']} frames late)")


class StreamingOnnxClassifier(StreamingClassifier):
    """The stage graphs in ONNX Runtime; each stage file must be the one the bundle records."""

    def __init__(self, path, meta: Dict, providers: Optional[List[str]] = None, threads: int = 0):
        from .onnxrt import ort_session
        from .streamplan import stage_file

        super().__init__(meta, path)  # every stage file checked by load_bundle
        self.sessions = [ort_session(stage_file(path, st["name"]), providers, threads) for st in self.stream["stages"]]
        self.backend = f"onnxruntime-{self.sessions[0].get_providers()[0].replace('ExecutionProvider', '').lower()}"

    def run_stage(self, k: int, feeds):
        return self.sessions[k].run(None, feeds)


def _tensorrt_for(path):
    """TensorRT 10 (trt_engine.require_tensorrt), or one line on what running ``path`` needs."""
    from . import engine as trt_engine

    if trt_engine.tensorrt_or_none() is None:
        raise EngineError(f"{path}: TensorRT engines need the tensorrt package (on a Jetson: JetPack's, "
                          "through a venv with --system-site-packages); use the .onnx here")
    return trt_engine.require_tensorrt()


def _deserialise(runtime, path):
    engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
    if engine is None:
        raise EngineError(f"{path}: TensorRT could not deserialise it; rebuild it with fts-edge build-engine")
    return engine


def _set_address(context, name: str, ptr, path) -> None:
    """IExecutionContext.set_tensor_address, whose False (a null or misaligned address, a name the
    engine lacks) would otherwise leave the tensor reading or writing the previous address."""
    if not context.set_tensor_address(name, ptr):
        raise EngineError(f"{path}: TensorRT refused the device address of tensor {name}")


class TensorRTClassifier(Classifier):
    """A TensorRT 10 engine through the tensor-name API (set_input_shape, set_tensor_address,
    execute_async_v3), buffers from ``cudamem`` (cuda-python, else pycuda; pinned host memory).
    Refuses an engine that is not the file its metadata describes or was built for another
    TensorRT or GPU. ``close()`` frees the buffers (also at interpreter exit)."""

    backend = "tensorrt"

    def __init__(self, path, meta: Dict):
        from . import engine as trt_engine
        from .cudamem import DeviceBuffers

        trt = _tensorrt_for(path)
        self.cuda = DeviceBuffers()  # first: without CUDA the engine's GPU cannot even be asked for
        try:
            trt_engine.check_engine(meta, trt_engine.device_identity(trt), path)
        except Exception:
            self.cuda.close()
            raise
        super().__init__(meta, path)
        self.trt = trt
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = _deserialise(self.runtime, path)
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        ins = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(ins) != 1 or len(outs) != 1:
            raise EngineError(f"{path}: expected one input and one output tensor, found {ins} and {outs}")
        self.inp, self.out = ins[0], outs[0]
        for n in (self.inp, self.out):
            if self.engine.get_tensor_dtype(n) != trt.DataType.FLOAT:
                raise EngineError(f"{path}: tensor {n} is {self.engine.get_tensor_dtype(n)}, expected FLOAT")
        in_shape = tuple(self.engine.get_tensor_shape(self.inp))
        self.batch = in_shape[0] if in_shape[0] > 0 else None
        if self.batch is None:  # dynamic batch: the profile's largest batch bounds a chunk
            self.max_batch = int(self.engine.get_tensor_profile_shape(self.inp, 0)[2][0])
        out_shape = tuple(self.engine.get_tensor_shape(self.out))
        self.check_io(in_shape[1:], out_shape[-1] if out_shape[-1] > 0 else None)

    def logits(self, clips):
        if self.batch is None and len(clips) > self.max_batch:
            return np.concatenate([self.logits(clips[i:i + self.max_batch])
                                   for i in range(0, len(clips), self.max_batch)])
        if not self.context.set_input_shape(self.inp, tuple(clips.shape)):
            raise EngineError(f"{self.path}: TensorRT refused input shape {tuple(clips.shape)}")
        out_shape = tuple(self.context.get_tensor_shape(self.out))
        h_in = self.cuda.host("in", clips.shape)
        h_out = self.cuda.host("out", out_shape)
        np.copyto(h_in, clips)
        d_in = self.cuda.device("in", h_in.nbytes)
        d_out = self.cuda.device("out", h_out.nbytes)
        _set_address(self.context, self.inp, d_in, self.path)
        _set_address(self.context, self.out, d_out, self.path)
        self.cuda.htod(d_in, h_in)
        if not self.context.execute_async_v3(self.cuda.stream_handle):
            raise EngineError(f"{self.path}: TensorRT execution failed")
        self.cuda.dtoh(h_out, d_out)
        self.cuda.sync()
        return h_out.copy()

    def close(self):
        self.context = None
        self.engine = None
        self.cuda.close()


class _DeviceTensor:
    """A float32 tensor in device memory that a TensorRT stage wrote; its buffer goes back to the
    pool when nothing holds it any more (the stream replaced it with the next step's)."""

    def __init__(self, pool: "StreamingTensorRTClassifier", key: str, ptr: int, shape):
        self.pool, self.key, self.ptr, self.shape = pool, key, ptr, tuple(shape)

    def __del__(self):
        self.pool._free.setdefault(self.shape, []).append((self.key, self.ptr))


class StreamingTensorRTClassifier(StreamingClassifier):
    """A streaming student's four TensorRT engines (the frame stage's file and the three beside
    it, each checked like any engine), stepped with the state kept in device memory: a stage's
    outputs are written to buffers from a pool, and the buffers of the states they replace return
    to it, so a step copies only the frame in (and the logits out when layer4 runs)."""

    backend = "tensorrt"

    def __init__(self, path, meta: Dict):
        from . import engine as trt_engine
        from .bundle import load_bundle
        from .cudamem import DeviceBuffers
        from .streamplan import stage_file

        trt = _tensorrt_for(path)
        self.cuda = DeviceBuffers()
        try:
            here = trt_engine.device_identity(trt)
            metas = []
            for st in meta["streaming"]["stages"]:  # each stage engine checked by load_bundle (file, stage)
                f = stage_file(path, st["name"])
                m = meta if st["name"] == meta["streaming"]["stages"][0]["name"] else load_bundle(f)
                trt_engine.check_engine(m, here, f)
                metas.append((f, m))
        except Exception:
            self.cuda.close()
            raise
        super().__init__(meta, path)
        self.trt = trt
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engines, self.contexts = [], []
        self._free: Dict = {}
        self._n = 0
        for (f, m), st in zip(metas, self.stream["stages"]):
            engine = _deserialise(self.runtime, f)
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            ins = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            outs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
            if sorted(ins) != sorted(st["inputs"]) or sorted(outs) != sorted(st["outputs"]):
                raise EngineError(f"{f}: its tensors are not the {st['name']} stage its metadata describes; rebuild it")
            for n in names:
                if engine.get_tensor_dtype(n) != trt.DataType.FLOAT:
                    raise EngineError(f"{f}: tensor {n} is {engine.get_tensor_dtype(n)}, expected FLOAT")
            self.engines.append(engine)
            self.contexts.append(engine.create_execution_context())
        frame = tuple(self.engines[0].get_tensor_shape("frame"))
        if frame != (1, 3, 1, self.spec.size, self.spec.size):
            raise EngineError(f"{path}: the engine takes frames {frame}, its metadata says size {self.spec.size}")

    def _buffer(self, shape) -> _DeviceTensor:
        shape = tuple(int(d) for d in shape)
        free = self._free.get(shape)
        if free:
            key, ptr = free.pop()
        else:
            self._n += 1
            key = f"state{self._n}"
            ptr = self.cuda.device(key, int(np.prod(shape)) * 4)
        return _DeviceTensor(self, key, ptr, shape)

    def run_stage(self, k: int, feeds):
        st, ctx = self.stream["stages"][k], self.contexts[k]
        held = []  # uploads of host arrays (the frame, a zero state): alive until the sync below
        for name in st["inputs"]:
            value = feeds[name]
            if isinstance(value, _DeviceTensor):
                ptr = value.ptr
            else:
                value = np.ascontiguousarray(value, np.float32)
                host = self.cuda.host(f"in:{name}", value.shape)
                np.copyto(host, value)
                dev = self._buffer(value.shape)
                self.cuda.htod(dev.ptr, host)
                held.append(dev)
                ptr = dev.ptr
            if not ctx.set_input_shape(name, tuple(value.shape)):
                raise EngineError(f"{self.path}: TensorRT refused {name} of shape {tuple(value.shape)}")
            _set_address(ctx, name, ptr, self.path)
        outs = []
        for name in st["outputs"]:
            out = self._buffer(ctx.get_tensor_shape(name))
            _set_address(ctx, name, out.ptr, self.path)
            outs.append(out)
        if not ctx.execute_async_v3(self.cuda.stream_handle):
            raise EngineError(f"{self.path}: TensorRT execution failed ({st['name']} stage)")
        if st["outputs"][0] == "logits":
            host = self.cuda.host("logits", outs[0].shape)
            self.cuda.dtoh(host, outs[0].ptr)
            self.cuda.sync()
            outs[0] = host.copy()
        else:
            self.cuda.sync()
        return outs

    def close(self):
        self.streams.clear()
        self.contexts, self.engines = [], []
        self.cuda.close()


def load_classifier(path, device: Optional[str] = None, threads: int = 0) -> Classifier:
    """The classifier of a deployable artifact, its bundle read and checked once
    (``bundle.load_bundle``): TensorRT for an ``.engine``, ONNX Runtime for an ``.onnx`` (CUDA
    where present, CPU with ``device="cpu"``); a streaming student's stage graphs behind the same
    interface. Only an RGB network classifies: a flow teacher is refused. A checkpoint needs
    torch: ``fts_edge.load`` takes every kind."""
    from .bundle import load_bundle

    p = Path(path)
    meta = require_classifier(load_bundle(p), p)
    if p.suffix == ".engine":
        return StreamingTensorRTClassifier(p, meta) if meta.get("streaming") else TensorRTClassifier(p, meta)
    if p.suffix == ".onnx":
        providers = ["CPUExecutionProvider"] if device == "cpu" else None
        if meta.get("streaming"):
            return StreamingOnnxClassifier(p, meta, providers, threads)
        return OnnxClassifier(p, meta, providers, threads)
    raise CheckpointError(f"{p}: unknown model type {p.suffix!r} (use .engine or .onnx)")


def require_classifier(meta: Dict, path) -> Dict:
    """An RGB network's bundle, or one line: a flow teacher reads flow, not frames."""
    if meta["role"] not in ("student", "rgb"):
        raise CheckpointError(f"{path}: a flow {meta['role']} (it reads optical flow, not frames); the camera, "
                              "predict, "
                              "evaluate, verify and bench run the RGB student")
    return meta


Loader = Callable[..., Classifier]


def as_classifier(model, load: Optional[Loader] = None, device: Optional[str] = None, threads: int = 0) -> Classifier:
    """``model`` itself where it is a Classifier already, else the one ``load`` (default
    ``load_classifier``; ``fts_edge.load`` takes checkpoints too) makes of its path."""
    if isinstance(model, Classifier):
        return model
    return (load or load_classifier)(model, device=device, threads=threads)
