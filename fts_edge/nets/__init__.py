"""The 3D networks (R3D-18, ResNeXt3D-18, the causal streaming variant, the flow teacher) and checkpoints.

Names below are the package's public face (imported when first used); everything else is private
by convention."""
import importlib

_EXPORTS = {
    "create_model": ".models",
    "ResNet3D": ".models",
    "FlowTeacher": ".models",
    "MODELS": ".models",
    "load_checkpoint": ".checkpoint",
    "build_from_checkpoint": ".checkpoint",
    "save_checkpoint": ".checkpoint",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
