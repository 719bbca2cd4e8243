"""Bundle metadata: the JSON beside every checkpoint, ONNX and engine that every later stage reads
(classes, ClipSpec, input/output names, precision, parent hashes, tool versions).

This module imports no torch: the device half (runtime, camera, engine build from an ONNX,
verify, bench of a given model, doctor) reads and writes bundles through it alone.
"""
from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Dict, Optional

from .artifacts import atomic_write_text
from .clipspec import ClipSpec
from .errors import CheckpointError


def metadata_path(artifact) -> Path:
    """The bundle metadata file beside an artifact: NAME.onnx -> NAME.onnx.json."""
    return Path(str(artifact) + ".json")


def package_version(dist: str) -> Optional[str]:
    """An installed distribution's version without importing it (importing torch costs seconds)."""
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:  # not installed, or broken metadata: say nothing rather than fail
        return None


def versions() -> Dict[str, str]:
    """Versions of the tools that made an artifact, recorded in its metadata."""
    from . import __version__

    out = {"python": platform.python_version(), "fts_edge": __version__}
    for key, dist in (("torch", "torch"), ("numpy", "numpy"), ("onnx", "onnx"), ("onnxruntime", "onnxruntime"),
                      ("tensorrt", "tensorrt")):
        v = package_version(dist)
        if v:
            out[key] = v
    try:
        import cv2
        out["cv2"] = str(cv2.__version__)
    except Exception:  # absent or broken: record that, never fail for it
        pass
    return out


def write_metadata(path, meta: dict) -> Path:
    return atomic_write_text(path, json.dumps(meta, indent=2))


def read_metadata(path) -> dict:
    """Read and validate a bundle: it must name its classes and a valid ClipSpec."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: bundle metadata missing (it is written beside every checkpoint, ONNX and engine)")
    try:
        meta = json.loads(p.read_text())
        ClipSpec.from_dict(meta["clip_spec"])
        if not isinstance(meta["classes"], list) or not meta["classes"]:
            raise ValueError("no class names")
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{p}: malformed bundle metadata ({type(e).__name__}: {e})")
    return meta


def read_bundle_of(artifact) -> dict:
    """The bundle beside an artifact (NAME.onnx -> NAME.onnx.json), validated."""
    return read_metadata(metadata_path(artifact))
