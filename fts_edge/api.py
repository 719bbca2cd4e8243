"""The Python API, for people who embed the toolkit rather than call its commands.

    import fts_edge

    model = fts_edge.load("engines/student.int8.cpu.onnx")   # .engine, .onnx (fp32, fp16, INT8) or .pt
    rows = model.predict(["clip.mp4"])                        # one label per video
    probs = model.classify(clips)                             # (N, 3, T, S, S) -> (N, classes)
    for row in model.stream("/dev/video0", max_windows=100):  # the camera's prediction rows, live
        print(row["label"])

    fts_edge.fit(fts_edge.TrainConfig(role="teacher", dataset="folder", root="my_videos"))
    fts_edge.export_checkpoint("runs/student/best.pt")               # ONNX, checked against PyTorch

``load`` reads and checks the artifact's bundle once (class names, ClipSpec, role, precision,
sha256); a checkpoint needs torch, everything else runs without it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Union

import numpy as np


class Model:
    """Any artifact behind one object: ``classify`` clips, ``predict`` videos, ``stream`` a source.

    Attributes: ``classes`` (output order), ``spec`` (the ClipSpec every clip is made with),
    ``meta`` (the checked bundle), ``backend`` (onnxruntime-cpu, tensorrt, torch), ``streaming``
    (a streaming student, stepped one frame at a time)."""

    def __init__(self, classifier):
        self.classifier = classifier

    classes = property(lambda self: self.classifier.classes)
    spec = property(lambda self: self.classifier.spec)
    meta = property(lambda self: self.classifier.meta)
    backend = property(lambda self: self.classifier.backend)
    streaming = property(lambda self: bool(getattr(self.classifier, "streaming", False)))

    def classify(self, clips: np.ndarray) -> np.ndarray:
        """Class probabilities of preprocessed clips (3, T, S, S) or (N, 3, T, S, S): (N, classes)."""
        return self.classifier.classify(clips)

    def predict(self, videos: Union[str, Iterable[str]], clips: int = 5, k: int = 3) -> List[Dict]:
        """One row per video file (folders and glob patterns are expanded): its label and score, the
        top ``k`` classes of ``clips`` clips averaged, or the reason it could not be read."""
        from .device.predict import predict

        return predict([videos] if isinstance(videos, (str, Path)) else list(videos), self.classifier, clips=clips,
                       k=k, close=False)

    def stream(self, source: Union[str, Iterable[str]], **settings) -> Iterator[Dict]:
        """The camera app's JSON rows for a source URI (a file, /dev/videoN, csi://N, rtsp://...,
        synthetic://) or several, as they come: ``prediction`` rows (label, top classes, smoothed
        scores), ``event`` rows, and a last ``summary``. ``settings`` are the camera's (``every``,
        ``smooth``, ``topk``, ``on``, ``off``, ``realtime``, ``max_windows``, ...: LiveSettings)."""
        from .live.camera import CameraSettings, iterate

        inputs = [source] if isinstance(source, (str, Path)) else list(source)
        yield from iterate(self.classifier, CameraSettings.make(inputs=[str(i) for i in inputs], **settings))

    def close(self) -> None:
        """Free what the backend holds (device memory)."""
        self.classifier.close()

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<fts_edge.Model {self.classifier.describe()}, {len(self.classes)} classes>"


def load_classifier(path, device: Optional[str] = None, threads: int = 0):
    """The runtime Classifier of any artifact: a checkpoint through PyTorch (needs torch), an
    ONNX or engine through the device half (``device.runtime.load_classifier``)."""
    if Path(path).suffix in (".pt", ".pth"):
        from .export.torch_runtime import load_torch_classifier

        return load_torch_classifier(path, device=device, threads=threads)
    from .device.runtime import load_classifier as load_deployed

    return load_deployed(path, device=device, threads=threads)


def load(path, device: Optional[str] = None, threads: int = 0) -> Model:
    """The model of any artifact (``.engine``, ``.onnx``, INT8/fp16 ONNX, ``.pt``), its bundle
    checked once. ``device``: "cpu" or "cuda" for ONNX Runtime and PyTorch (default: the best
    there is); ``threads``: inference threads (0: the runtime's choice)."""
    return Model(load_classifier(path, device=device, threads=threads))


def bundle(path) -> Dict:
    """The checked bundle of any artifact (class names, ClipSpec, role, precision, provenance)."""
    if Path(path).suffix in (".pt", ".pth"):
        from .export.torch_runtime import checkpoint_bundle

        return checkpoint_bundle(path)
    from .device.bundle import load_bundle

    return load_bundle(path)


def fit(settings) -> Dict:
    """Train one network (teacher, RGB baseline or distilled student) with a ``TrainConfig``:
    resumable, atomic, the same as ``train/train_teacher.py`` and ``train/train_student.py``.
    Returns the run's summary (best and last top-1, epochs, folder)."""
    from .train.loop import fit as fit_run

    return fit_run(settings)


def export_checkpoint(checkpoint, out=None, **kw) -> Dict:
    """A student checkpoint to ONNX (a streaming student to its stage graphs), simplified and
    checked against PyTorch on real clips; returns the report (``onnx``, ``parity``, ...)."""
    from .export.onnx import export as export_checkpoint

    return export_checkpoint(checkpoint, out, **kw)


def build_engine(model=None, settings=None, say=print, progress=None, **kw) -> Dict:
    """From an fp32 ONNX (a student checkpoint is exported first, which needs torch): INT8 Q/DQ
    models checked against fp32, an fp16 copy, and the TensorRT engine where TensorRT and a GPU
    are. ``settings``: a ``device.build.BuildSettings``, or its fields as keywords (``int8=True``,
    ``calib_clips=64``, ...). Returns the report."""
    from .device.build import BuildSettings
    from .device.build import build_engine as build

    s = settings or BuildSettings.make(**kw)
    report = {}
    if model is not None and Path(model).suffix in (".pt", ".pth"):
        calib = s.calib_input
        exp = export_checkpoint(model, video=calib if calib and Path(calib).is_file() else None)
        say(f"exported {exp['onnx']} (parity with PyTorch on {exp['parity']['clips']} clips: top-1 "
            f"{exp['parity']['top1_agreement']:.0%}, max rel diff {exp['parity']['max_rel_diff']:.1e})")
        report["export"], model = exp, exp["onnx"]
    return {**report, **build(model, s, progress=progress, say=say)}


