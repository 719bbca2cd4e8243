"""A stand-in for ``pycuda.driver``, for tests off the device.

WHAT IT PROVES. fts-edge's pycuda path keeps pycuda's contract: ``init()`` first, a primary
context retained and pushed, and popped again (``context_stack()`` is empty after a clean close:
pycuda aborts at interpreter exit when it is not), allocations freed, page-locked host arrays,
async copies on a stream. Device memory is the cuda-python stand-in's, so the TensorRT stand-in
runs engines on buffers made here too.

WHAT IT DOES NOT PROVE. Anything about a GPU (see tests/standin/cuda/bindings/runtime.py).
"""
from __future__ import annotations

import ctypes

import numpy as np

from cuda.bindings import runtime as _rt

_stack = []
_initialised = [False]


class Error(Exception):
    pass


def init(flags=0):
    _initialised[0] = True


def context_stack():
    return list(_stack)


class Context:
    def push(self):
        _stack.append(self)

    @staticmethod
    def pop():
        if not _stack:
            raise Error("context stack is empty")
        _stack.pop()


class device_attribute:  # noqa: N801 (pycuda's spelling)
    MULTIPROCESSOR_COUNT = 16


class Device:
    def __init__(self, ordinal):
        if not _initialised[0]:
            raise Error("cuInit has not been called")
        self.ordinal = ordinal

    def retain_primary_context(self):
        return Context()

    def name(self):
        return _rt.cudaDeviceProp().name.decode()

    def compute_capability(self):
        p = _rt.cudaDeviceProp()
        return p.major, p.minor

    def get_attribute(self, attr):
        if attr != device_attribute.MULTIPROCESSOR_COUNT:
            raise NotImplementedError(f"the stand-in answers MULTIPROCESSOR_COUNT only, not {attr}")
        return _rt.cudaDeviceProp().multiProcessorCount

    def total_memory(self):
        return _rt.cudaDeviceProp().totalGlobalMem


class DeviceAllocation:
    def __init__(self, ptr):
        self._ptr = ptr

    def __int__(self):
        return self._ptr

    def free(self):
        _rt.cudaFree(self._ptr)


def _need_context():
    if not _stack:
        raise Error("no current context (push one first)")


def mem_alloc(bytesize):
    _need_context()
    return DeviceAllocation(_rt._alloc(_rt._device, bytesize))


class _HostAllocation:
    def __init__(self, ptr):
        self.ptr = ptr

    def free(self):
        _rt._pinned.pop(self.ptr, None)


def pagelocked_empty(shape, dtype):
    _need_context()
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    ptr = _rt._alloc(_rt._pinned, n)
    arr = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_uint8)), (n,)).view(dtype).reshape(shape)
    holder = _HostAllocation(ptr)
    return _Pinned(arr, holder)


class _Pinned(np.ndarray):
    def __new__(cls, arr, holder):
        obj = arr.view(cls)
        obj._holder = holder
        return obj

    @property
    def base(self):  # what pycuda's page-locked arrays expose: the HostAllocation
        return getattr(self, "_holder", None)


class Stream:
    def __init__(self):
        _need_context()
        self.handle = int(_rt.cudaStream_t())

    def synchronize(self):
        pass


def memcpy_htod_async(dest, src, stream=None):
    if not _rt._is_device(int(dest), src.nbytes):
        raise Error("invalid device pointer")
    ctypes.memmove(int(dest), src.ctypes.data, src.nbytes)


def memcpy_dtoh_async(dest, src, stream=None):
    if not _rt._is_device(int(src), dest.nbytes):
        raise Error("invalid device pointer")
    ctypes.memmove(dest.ctypes.data, int(src), dest.nbytes)
