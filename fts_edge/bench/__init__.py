"""Benchmarks: commands that print and save figures (the pipeline, flow, streaming, a given model).

Names below are the package's public face (imported when first used); everything else is private
by convention."""
import importlib

_EXPORTS = {
    "run": ".pipeline",
    "bench_model": ".model",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
