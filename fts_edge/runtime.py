"""One classifier interface over every backend: a TensorRT ``.engine``, an ``.onnx`` (ONNX Runtime,
CUDA provider where present, else CPU) or a checkpoint (PyTorch). The backend is picked from the
artifact; classes and preprocessing come from its bundle metadata, never from the caller.

    clf = load_classifier("engines/student.int8.onnx")
    probs = clf.classify(clip)        # clip (3, T, H, W) or (N, 3, T, H, W) -> (N, classes)
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .clipspec import ClipSpec
from .errors import CheckpointError, EngineError

log = logging.getLogger(__name__)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class Classifier:
    backend = "?"

    def __init__(self, meta: Dict, path):
        self.meta, self.path = meta, str(path)
        self.spec = ClipSpec.from_dict(meta["clip_spec"])
        self.classes: List[str] = list(meta["classes"])
        self.batch: Optional[int] = None  # a static batch size, if the artifact has one

    def logits(self, clips: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def classify(self, clip: np.ndarray) -> np.ndarray:
        clips = np.asarray(clip, dtype=np.float32)
        if clips.ndim == 4:
            clips = clips[None]
        want = self.spec.input_shape
        if clips.ndim != 5 or tuple(clips.shape[1:]) != want:
            raise ValueError(f"{Path(self.path).name} takes clips (N, {', '.join(map(str, want))}), "
                             f"got {tuple(clips.shape)}")
        if self.batch and len(clips) != self.batch:  # static batch: run in chunks, padding the last
            out = []
            for i in range(0, len(clips), self.batch):
                chunk = clips[i:i + self.batch]
                pad = self.batch - len(chunk)
                if pad:
                    chunk = np.concatenate([chunk, np.zeros((pad, *want), np.float32)])
                out.append(self.logits(np.ascontiguousarray(chunk))[:self.batch - pad])
            return softmax(np.concatenate(out))
        return softmax(self.logits(np.ascontiguousarray(clips)))

    def describe(self) -> str:
        return f"{self.backend} {Path(self.path).name} ({self.meta.get('precision', 'fp32')})"


class TorchClassifier(Classifier):
    backend = "torch"

    def __init__(self, path, device: Optional[str] = None):
        import torch

        from .checkpoint import bundle_metadata, load_checkpoint
        from .export import load_student

        ck, self.model = load_student(path)
        super().__init__(bundle_metadata(ck), path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()

    def logits(self, clips):
        import torch

        with torch.no_grad():
            return self.model(torch.from_numpy(clips).to(self.device)).float().cpu().numpy()


class OnnxClassifier(Classifier):
    backend = "onnxruntime"

    def __init__(self, path, providers: Optional[List[str]] = None, threads: int = 0):
        from .checkpoint import read_metadata
        from .export import metadata_path, ort_session

        super().__init__(read_metadata(metadata_path(path)), path)
        self.session = ort_session(path, providers, threads)
        self.input = self.session.get_inputs()[0]
        dim0 = self.input.shape[0]
        self.batch = dim0 if isinstance(dim0, int) else None
        self.backend = f"onnxruntime-{self.session.get_providers()[0].replace('ExecutionProvider', '').lower()}"

    def logits(self, clips):
        return self.session.run(None, {self.input.name: clips})[0]


class TensorRTClassifier(Classifier):
    """A TensorRT 10 engine through the tensor-name API (set_tensor_address, execute_async_v3).
    Buffers through cuda-python (``cuda.bindings.runtime``) or, where that is what the device
    has, pycuda. Refuses engines built for another TensorRT or GPU."""

    backend = "tensorrt"

    def __init__(self, path):
        from . import engine as trt_engine

        trt = trt_engine.tensorrt_or_none()
        if trt is None:
            raise EngineError(f"{path}: TensorRT engines need the tensorrt package (on a Jetson: JetPack's, "
                              "through a venv with --system-site-packages); use the .onnx here")
        meta = trt_engine.read_engine_metadata(path)
        here = trt_engine.engine_identity(trt, meta.get("precision"), meta.get("onnx_sha256"))
        trt_engine.check_engine_metadata(meta, here, path)
        super().__init__(meta, path)
        self.trt = trt
        logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise EngineError(f"{path}: TensorRT could not deserialise it; rebuild with fts-edge build-engine")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inp = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.out = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self.batch = int(self.engine.get_tensor_shape(self.inp)[0])
        if self.batch < 1:
            self.batch = None
        self.cuda = _CudaBuffers()

    def logits(self, clips):
        shape = clips.shape
        self.context.set_input_shape(self.inp, shape)
        out_shape = tuple(self.context.get_tensor_shape(self.out))
        out = np.empty(out_shape, np.float32)
        d_in = self.cuda.device_buffer("in", clips.nbytes)
        d_out = self.cuda.device_buffer("out", out.nbytes)
        self.context.set_tensor_address(self.inp, d_in)
        self.context.set_tensor_address(self.out, d_out)
        self.cuda.htod(d_in, clips)
        if not self.context.execute_async_v3(self.cuda.stream_handle):
            raise EngineError(f"{self.path}: TensorRT execution failed")
        self.cuda.dtoh(out, d_out)
        self.cuda.sync()
        return out


class _CudaBuffers:
    """Device buffers and a stream: cuda-python if present, else pycuda (imported here, never at
    module import; no pycuda.autoinit)."""

    def __init__(self):
        self.bufs: Dict[str, tuple] = {}
        try:
            from cuda.bindings import runtime as cudart
            self.rt, self.kind = cudart, "cuda-python"
            self.stream = self._check(cudart.cudaStreamCreate())
            self.stream_handle = int(self.stream)
        except ImportError:
            try:
                import pycuda.driver as cuda
            except ImportError:
                raise EngineError("TensorRT inference needs cuda-python (pip install cuda-python) or pycuda")
            cuda.init()
            self.ctx = cuda.Device(0).retain_primary_context()
            self.ctx.push()
            self.rt, self.kind = cuda, "pycuda"
            self.stream = cuda.Stream()
            self.stream_handle = self.stream.handle

    def _check(self, result):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise EngineError(f"CUDA error {err}")
        return rest[0] if len(rest) == 1 else rest

    def device_buffer(self, name, nbytes):
        if name in self.bufs and self.bufs[name][1] >= nbytes:
            return int(self.bufs[name][0])
        if self.kind == "cuda-python":
            ptr = self._check(self.rt.cudaMalloc(nbytes))
        else:
            ptr = self.rt.mem_alloc(nbytes)
        self.bufs[name] = (ptr, nbytes)
        return int(ptr)

    def htod(self, dst, host):
        if self.kind == "cuda-python":
            self._check(self.rt.cudaMemcpyAsync(dst, host.ctypes.data, host.nbytes,
                                                self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))
        else:
            self.rt.memcpy_htod_async(dst, host, self.stream)

    def dtoh(self, host, src):
        if self.kind == "cuda-python":
            self._check(self.rt.cudaMemcpyAsync(host.ctypes.data, src, host.nbytes,
                                                self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))
        else:
            self.rt.memcpy_dtoh_async(host, src, self.stream)

    def sync(self):
        if self.kind == "cuda-python":
            self._check(self.rt.cudaStreamSynchronize(self.stream))
        else:
            self.stream.synchronize()


def load_classifier(path, device: Optional[str] = None, threads: int = 0) -> Classifier:
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such model (an .engine, .onnx or checkpoint .pt)")
    if p.suffix == ".engine":
        return TensorRTClassifier(p)
    if p.suffix == ".onnx":
        providers = ["CPUExecutionProvider"] if device == "cpu" else None
        return OnnxClassifier(p, providers, threads)
    if p.suffix in (".pt", ".pth"):
        return TorchClassifier(p, device)
    raise CheckpointError(f"{p}: unknown model type {p.suffix!r} (use .engine, .onnx or .pt)")
