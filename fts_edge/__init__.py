"""fts-edge: FTSnet (flow teacher -> RGB student) from workstation training to a Jetson camera.

The library imports on a CPU-only machine: TensorRT, pycuda and cameras are imported lazily
inside the functions that need them.
"""
__version__ = "0.1.0"

from .errors import FtsError  # noqa: F401
from .clipspec import ClipSpec  # noqa: F401
