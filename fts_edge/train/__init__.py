"""Training, distillation, evaluation and reports (torch).

Names below are the package's public face (imported when first used); everything else is private
by convention."""
import importlib

_EXPORTS = {
    "TrainConfig": ".config",
    "fit": ".loop",
    "distillation_loss": ".distill",
    "evaluate": ".evaluate",
    "ClipSet": ".data",
    "VideoDataset": ".data",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
