"""Optical flow: the TV-L1 layers, the flow store, flow pictures and flow evaluation (torch).

Names below are the package's public face (imported when first used); everything else is private
by convention."""
import importlib

_EXPORTS = {
    "TVL1": ".tvl1",
    "to_grey": ".tvl1",
    "FlowStore": ".store",
    "open_store": ".store",
    "flow_to_color": ".pictures",
    "write_flow_pictures": ".pictures",
    "opencv_tvl1": ".evaluation",
    "endpoint_error": ".evaluation",
    "known_pairs": ".evaluation",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
