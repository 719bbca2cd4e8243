"""CUDA memory and a stream for TensorRT engines: cuda-python first, pycuda as the fallback.

cuda-python is tried first (``cuda.bindings.runtime`` from 12.6.1 on, ``cuda.cudart`` before),
and abandoned for pycuda when it is missing *or* when its first calls fail: a cuda-python built
for a newer CUDA than the driver imports fine and then answers every call with
cudaErrorInsufficientDriver (PyPI's 13.x on JetPack 6), and without a driver at all its calls raise
RuntimeError. Host buffers are pinned (page-locked), so copies run asynchronously on the stream.
Everything is freed by ``close()``, and pycuda's context is popped there too (pycuda aborts at
interpreter exit when a pushed context is left on its stack).

Nothing is imported at module import; ``pycuda.autoinit`` is never used.
"""
from __future__ import annotations

import atexit
import ctypes
import logging
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..core.errors import EngineError, first_line

log = logging.getLogger(__name__)


def import_cudart():
    """cuda-python's runtime module: ``cuda.bindings.runtime`` (12.6.1 and later) or ``cuda.cudart``."""
    try:
        from cuda.bindings import runtime as cudart
        return cudart
    except ImportError:
        from cuda import cudart  # cuda-python before 12.6.1
        return cudart


class CudaError(EngineError):
    """A CUDA call that returned an error code."""


class _CudaPython:
    kind = "cuda-python"

    def __init__(self):
        self.rt = import_cudart()
        self.stream = self.call(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    def call(self, result, what: str):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise CudaError(f"{what} failed: {err!r} (cuda-python {_cuda_python_version()}; JetPack 6 needs "
                            "cuda-python 12.x: pip install 'cuda-python>=12.2,<12.7')")
        return rest[0] if len(rest) == 1 else tuple(rest)

    @property
    def stream_handle(self) -> int:
        return int(self.stream)

    def malloc(self, nbytes: int) -> int:
        return int(self.call(self.rt.cudaMalloc(nbytes), "cudaMalloc"))

    def free(self, ptr: int):
        self.call(self.rt.cudaFree(ptr), "cudaFree")

    def pinned(self, shape, dtype) -> Tuple[np.ndarray, int]:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        ptr = int(self.call(self.rt.cudaMallocHost(nbytes), "cudaMallocHost"))
        arr = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(np.ctypeslib.as_ctypes_type(np.dtype(dtype)))),
                                    (int(np.prod(shape)),)).reshape(shape)
        return arr, ptr

    def free_pinned(self, ptr: int, arr):
        self.call(self.rt.cudaFreeHost(ptr), "cudaFreeHost")

    def htod(self, dst: int, host: np.ndarray):
        self.call(
            self.rt.cudaMemcpyAsync(
                dst, host.ctypes.data, host.nbytes, self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream
            ),
            "cudaMemcpyAsync",
        )

    def dtoh(self, host: np.ndarray, src: int):
        self.call(
            self.rt.cudaMemcpyAsync(
                host.ctypes.data, src, host.nbytes, self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream
            ),
            "cudaMemcpyAsync",
        )

    def sync(self):
        self.call(self.rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")

    def close(self):
        self.call(self.rt.cudaStreamDestroy(self.stream), "cudaStreamDestroy")


class _PyCuda:
    kind = "pycuda"

    def __init__(self):
        import pycuda.driver as cuda

        cuda.init()
        self.cuda = cuda
        self.ctx = cuda.Device(0).retain_primary_context()
        self.ctx.push()
        self._allocs: Dict[int, object] = {}
        try:
            self.stream = cuda.Stream()
        except Exception:
            self.ctx.pop()
            raise

    @property
    def stream_handle(self) -> int:
        return int(self.stream.handle)

    def malloc(self, nbytes: int) -> int:
        alloc = self.cuda.mem_alloc(nbytes)
        self._allocs[int(alloc)] = alloc
        return int(alloc)

    def free(self, ptr: int):
        alloc = self._allocs.pop(ptr, None)
        if alloc is not None:
            alloc.free()

    def pinned(self, shape, dtype) -> Tuple[np.ndarray, int]:
        arr = self.cuda.pagelocked_empty(tuple(shape), np.dtype(dtype))
        return arr, int(arr.ctypes.data)

    def free_pinned(self, ptr: int, arr):
        base = getattr(arr, "base", None)
        if base is not None and hasattr(base, "free"):
            base.free()

    def htod(self, dst: int, host: np.ndarray):
        self.cuda.memcpy_htod_async(dst, host, self.stream)

    def dtoh(self, host: np.ndarray, src: int):
        self.cuda.memcpy_dtoh_async(host, src, self.stream)

    def sync(self):
        self.stream.synchronize()

    def close(self):
        self.ctx.pop()


def _cuda_python_version() -> str:
    from .bundle import package_version

    return package_version("cuda-python") or package_version("cuda-bindings") or "?"


def open_cuda():
    """A working CUDA backend: cuda-python if it imports and answers, else pycuda. EngineError
    naming both reasons when neither works."""
    reasons: List[str] = []
    try:
        be = _CudaPython()
        be.sync()
        return be
    except ImportError:
        reasons.append("cuda-python is not installed")
    except (CudaError, RuntimeError, OSError) as e:  # wrong driver, no driver, no GPU
        reasons.append(f"cuda-python does not work here ({first_line(e, 160)})")
    try:
        be = _PyCuda()
        log.info("CUDA through pycuda (%s)", "; ".join(reasons))
        return be
    except ImportError:
        reasons.append("pycuda is not installed")
    except Exception as e:  # pycuda.driver.Error and friends
        reasons.append(f"pycuda does not work here ({type(e).__name__}: {first_line(e, 160)})")
    raise EngineError("TensorRT inference needs CUDA from Python: " + "; ".join(reasons) +
                      ". On JetPack 6: pip install 'cuda-python>=12.2,<12.7' (jetson/install.sh does this)")


def gpu_identity() -> Optional[Dict]:
    """GPU 0 as an engine is specific to it: name, compute capability, multiprocessor count and
    memory, asked of CUDA through cuda-python or pycuda (no torch); None where neither sees a GPU.
    (Every Orin module is compute capability 8.7; their multiprocessor counts differ: 16 on the
    AGX Orin 64 GB, 14 on the 32 GB, 8 on the Orin NX 16 GB and the Orin Nano 8 GB, 4 on the Nano 4 GB.)"""
    try:
        rt = import_cudart()
        err, props = rt.cudaGetDeviceProperties(0)
        if int(err) == 0:
            name = props.name
            name = name.decode(errors="replace").rstrip("\x00") if isinstance(name, (bytes, bytearray)) else str(name)
            return {"name": name, "compute_capability": f"{props.major}.{props.minor}",
                    "multiprocessors": int(props.multiProcessorCount), "memory_mb": int(props.totalGlobalMem) >> 20}
    except Exception:  # absent, no driver, wrong driver: try pycuda
        pass
    try:
        import pycuda.driver as cuda

        cuda.init()
        d = cuda.Device(0)
        major, minor = d.compute_capability()
        return {"name": d.name(), "compute_capability": f"{major}.{minor}",
                "multiprocessors": int(d.get_attribute(cuda.device_attribute.MULTIPROCESSOR_COUNT)),
                "memory_mb": int(d.total_memory()) >> 20}
    except Exception:
        return None


class DeviceBuffers:
    """Named device buffers, each with a pinned host twin, grown on demand, all freed by close()."""

    def __init__(self):
        self.cuda = open_cuda()
        self.kind = self.cuda.kind
        self._dev: Dict[str, Tuple[int, int]] = {}
        self._host: Dict[str, Tuple[np.ndarray, int]] = {}
        self._closed = False
        atexit.register(self.close)

    @property
    def stream_handle(self) -> int:
        return self.cuda.stream_handle

    def device(self, name: str, nbytes: int) -> int:
        have = self._dev.get(name)
        if have and have[1] >= nbytes:
            return have[0]
        if have:
            self.cuda.free(have[0])
        ptr = self.cuda.malloc(max(1, nbytes))
        self._dev[name] = (ptr, nbytes)
        return ptr

    def host(self, name: str, shape, dtype=np.float32) -> np.ndarray:
        have = self._host.get(name)
        if have and have[0].shape == tuple(shape) and have[0].dtype == np.dtype(dtype):
            return have[0]
        if have:
            self.cuda.free_pinned(have[1], have[0])
        arr, ptr = self.cuda.pinned(tuple(shape), dtype)
        self._host[name] = (arr, ptr)
        return arr

    def htod(self, dst: int, host: np.ndarray):
        self.cuda.htod(dst, host)

    def dtoh(self, host: np.ndarray, src: int):
        self.cuda.dtoh(host, src)

    def sync(self):
        self.cuda.sync()

    def close(self):
        if self._closed:
            return
        self._closed = True
        try:
            for ptr, _ in self._dev.values():
                self.cuda.free(ptr)
            for arr, ptr in self._host.values():
                self.cuda.free_pinned(ptr, arr)
        finally:
            self._dev.clear()
            self._host.clear()
            self.cuda.close()
