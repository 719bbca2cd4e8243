"""A stand-in for ``cuda.bindings.runtime`` (cuda-python 12.6), for tests off the device.

WHAT IT PROVES. fts-edge's CUDA calls keep cuda-python's documented contract: every function
returns a tuple whose first item is a ``cudaError_t`` (then the results), pointers are ints,
``cudaMemcpyAsync(dst, src, count, kind, stream)`` copies between the addresses given (a copy
into or out of memory that was never allocated, or past its end, fails with
cudaErrorInvalidValue), every allocation is freed (``live_allocations()``), and a failing
driver (``FTS_STANDIN_CUDA_ERROR=35``: cudaErrorInsufficientDriver, what cuda-python 13 answers on
JetPack 6) makes every call fail so the pycuda fallback can be tested. Every public name here is in
the real 12.6.2 module's list (tests/data/cuda-python-12.6.2-runtime-names.txt; checked by
tests/test_tensorrt_contract.py).

WHAT IT DOES NOT PROVE. Anything about a GPU: "device" memory is host memory here, streams do not
overlap, and no kernel runs. The TensorRT stand-in reads and writes this memory in its place.
"""
from __future__ import annotations

import ctypes
import enum
import os

import numpy as np


class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInsufficientDriver = 35
    cudaErrorNoDevice = 100


class cudaMemcpyKind(enum.IntEnum):
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3
    cudaMemcpyDefault = 4


class cudaStream_t:
    _next = 0x5000

    def __init__(self):
        cudaStream_t._next += 1
        self._h = cudaStream_t._next

    def __int__(self):
        return self._h

    def getPtr(self):
        return self._h


class cudaDeviceProp:
    def __init__(self):
        self.name = os.environ.get("FTS_STANDIN_GPU", "Orin (stand-in)").encode()
        cc = os.environ.get("FTS_STANDIN_CC", "8.7").split(".")
        self.major, self.minor = int(cc[0]), int(cc[1])
        # an AGX Orin 64 GB unless FTS_STANDIN_SMS says otherwise (an Orin Nano 8 GB has 8)
        self.multiProcessorCount = int(os.environ.get("FTS_STANDIN_SMS", "16"))
        self.totalGlobalMem = 64 << 30


_device = {}   # address -> ctypes buffer ("device" memory)
_pinned = {}   # address -> ctypes buffer (page-locked host memory)
_streams = {}
_used_streams = []


def _fail():
    code = os.environ.get("FTS_STANDIN_CUDA_ERROR")
    return cudaError_t(int(code)) if code else None


def _alloc(table, size):
    buf = ctypes.create_string_buffer(max(1, int(size)))
    table[ctypes.addressof(buf)] = buf
    return ctypes.addressof(buf)


def _is_device(ptr, nbytes):
    for base, buf in _device.items():
        if base <= ptr and ptr + nbytes <= base + ctypes.sizeof(buf):
            return True
    return False


def _read(ptr, nbytes):
    return np.frombuffer(ctypes.string_at(ptr, nbytes), np.uint8)


def _write(ptr, arr):
    ctypes.memmove(ptr, arr.ctypes.data, arr.nbytes)


def _stream_used(handle):
    _used_streams.append(handle)


def live_allocations():
    """(device, pinned, streams) still allocated: all zero after a clean close."""
    return len(_device), len(_pinned), len(_streams)


def cudaGetDeviceCount():
    err = _fail()
    return (err, 0) if err else (cudaError_t.cudaSuccess, 1)


def cudaGetDeviceProperties(device):
    err = _fail()
    return (err, None) if err else (cudaError_t.cudaSuccess, cudaDeviceProp())


def cudaStreamCreate():
    err = _fail()
    if err:
        return (err, None)
    s = cudaStream_t()
    _streams[int(s)] = s
    return (cudaError_t.cudaSuccess, s)


def cudaStreamDestroy(stream):
    if _streams.pop(int(stream), None) is None:
        return (cudaError_t.cudaErrorInvalidValue,)
    return (cudaError_t.cudaSuccess,)


def cudaStreamSynchronize(stream):
    err = _fail()
    if err:
        return (err,)
    return (cudaError_t.cudaSuccess,) if int(stream) in _streams else (cudaError_t.cudaErrorInvalidValue,)


def cudaMalloc(size):
    err = _fail()
    return (err, 0) if err else (cudaError_t.cudaSuccess, _alloc(_device, size))


def cudaMallocHost(size):
    err = _fail()
    return (err, 0) if err else (cudaError_t.cudaSuccess, _alloc(_pinned, size))


def cudaFree(devPtr):
    return (cudaError_t.cudaSuccess,) if _device.pop(int(devPtr), None) is not None else (cudaError_t.cudaErrorInvalidValue,)


def cudaFreeHost(ptr):
    return (cudaError_t.cudaSuccess,) if _pinned.pop(int(ptr), None) is not None else (cudaError_t.cudaErrorInvalidValue,)


def cudaMemcpyAsync(dst, src, count, kind, stream):
    err = _fail()
    if err:
        return (err,)
    kind = cudaMemcpyKind(kind)
    dst, src, count = int(dst), int(src), int(count)
    if kind == cudaMemcpyKind.cudaMemcpyHostToDevice and not _is_device(dst, count):
        return (cudaError_t.cudaErrorInvalidValue,)
    if kind == cudaMemcpyKind.cudaMemcpyDeviceToHost and not _is_device(src, count):
        return (cudaError_t.cudaErrorInvalidValue,)
    if int(stream) not in _streams:
        return (cudaError_t.cudaErrorInvalidValue,)
    ctypes.memmove(dst, src, count)
    return (cudaError_t.cudaSuccess,)
