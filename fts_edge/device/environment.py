"""What a measurement or a run was made on: one report for benchmarks, run reports and bundles.

Torch-free: versions are read from the installed distributions' metadata, not by importing them,
and the GPU is named by whichever of torch or the CUDA runtime is already loaded. On a Jetson the
power mode and clocks are included, since its numbers mean nothing without them.
"""
from __future__ import annotations

import os
import platform
import sys
from typing import Dict

DISTRIBUTIONS = ("torch", "numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt", "cuda-python", "pycuda",
                 "opencv-contrib-python-headless", "opencv-python")


def cpu_info() -> Dict:
    """The CPU's model name and vector features (AVX, AMX, VNNI: what INT8 speed depends on)."""
    out: Dict = {"cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.readlines()
    except OSError:
        return out
    name = next((line for line in lines if line.startswith("model name")), None)
    if name:
        out["cpu"] = name.split(":", 1)[1].strip()
    flags = next((line for line in lines if line.startswith(("flags", "Features"))), "")
    out["cpu_features"] = sorted({f for f in flags.split(":", 1)[-1].split()
                                  if f.startswith(("avx", "amx", "asimd")) or "vnni" in f})
    return out


def environment() -> Dict:
    """Python, OS, CPU, package versions, the GPU where one is in use, and a Jetson's power state."""
    from .bundle import package_version, versions

    env: Dict = {"python": platform.python_version(), "platform": platform.platform(), "machine": platform.machine(),
                 **cpu_info(), "versions": versions()}
    for dist in DISTRIBUTIONS:
        v = package_version(dist)
        if v:
            env["versions"].setdefault(dist, v)
    torch = sys.modules.get("torch")
    if torch is not None:
        env["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name(0)
    if "gpu" not in env and any(m in sys.modules for m in ("cuda.bindings.runtime", "cuda.cudart", "pycuda.driver")):
        try:
            from .cudamem import gpu_identity
            gpu = gpu_identity()
            if gpu:
                env["gpu"] = gpu["name"]
        except Exception:  # a report must not fail for want of a driver
            pass
    from .doctor import jetson_info, jetson_power
    j = jetson_info()
    env["jetson"] = {**j, **jetson_power()} if j else None
    return env
