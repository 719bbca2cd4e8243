"""The device half (no torch): bundle metadata, the runtime over ONNX Runtime and TensorRT, the engine
build from an ONNX, INT8, verify, predict, doctor.

Names below are the package's public face (imported when first used); everything else is private
by convention."""
import importlib

_EXPORTS = {
    "load_bundle": ".bundle",
    "metadata_path": ".bundle",
    "load_classifier": ".runtime",
    "Classifier": ".runtime",
    "build_engine": ".build",
    "verify": ".verify",
    "predict": ".predict",
    "evaluate_artifact": ".predict",
    "diagnose": ".doctor",
    "default_model": ".locate",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
