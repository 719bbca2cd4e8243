"""fts-edge: FTSnet (flow teacher -> RGB student) from workstation training to a Jetson camera.

    import fts_edge
    model = fts_edge.load("engines/student.onnx")       # any artifact: .engine, .onnx, INT8, .pt
    model.predict("clip.mp4")

The packages, lowest first: core (errors, atomic files, timing), data (video, ClipSpec,
transforms, datasets, sources), device (bundle, runtime, TensorRT, build, verify, predict,
doctor: no torch), flow (TV-L1 layers, the flow store), nets (3D ResNets, checkpoints), train,
export (checkpoint -> ONNX), live (streams, the camera app, the page: no torch), bench; the
``fts-edge`` command and the demo on top. The library imports on a CPU-only machine: torch,
TensorRT, pycuda and cameras are imported inside the functions that need them.
"""
from .api import Model, build_engine, bundle, export_checkpoint, fit, load  # noqa: F401
from .core.errors import FtsError  # noqa: F401
from .core.version import __version__  # noqa: F401
from .data.clipspec import ClipSpec  # noqa: F401


def __getattr__(name):  # TrainConfig needs torch: imported when first asked for
    if name == "TrainConfig":
        from .train.config import TrainConfig

        return TrainConfig
    raise AttributeError(f"module 'fts_edge' has no attribute {name!r}")
