"""Checkpoint to ONNX: a clip student's graph, a streaming student's stage graphs (torch).

Names below are the package's public face (imported when first used); everything else is private
by convention."""
import importlib

_EXPORTS = {
    "export": ".onnx",
    "export_onnx": ".onnx",
    "export_streaming_onnx": ".streaming",
    "TorchClassifier": ".torch_runtime",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
