"""Errors, atomic files, settings objects, timing: what every package below the commands uses.

Names below are the package's public face (imported when first used); everything else is private
by convention."""
import importlib

_EXPORTS = {
    "FtsError": ".errors",
    "UsageError": ".errors",
    "VideoError": ".errors",
    "DatasetError": ".errors",
    "CheckpointError": ".errors",
    "ExportError": ".errors",
    "EngineError": ".errors",
    "TensorRTUnavailable": ".errors",
    "SourceError": ".errors",
    "atomic_write_bytes": ".artifacts",
    "atomic_write_text": ".artifacts",
    "sha256_file": ".artifacts",
    "Settings": ".settings",
    "setting": ".settings",
    "progress": ".progress",
    "timeit": ".timing",
    "stats": ".timing",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
