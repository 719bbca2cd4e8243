"""Live classification (no torch): streams and ring buffers, the camera app, the live page.

Names below are the package's public face (imported when first used); everything else is private
by convention."""
import importlib

_EXPORTS = {
    "CameraSettings": ".camera",
    "run": ".camera",
    "iterate": ".camera",
    "LiveSettings": ".stream",
    "Streams": ".stream",
    "LIVE": ".stream",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
