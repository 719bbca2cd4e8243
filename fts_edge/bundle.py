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


# -- the bundle inside the model file, and artifacts committed with their metadata ------------
EMBED_KEY = "fts_edge.bundle"


def embed_bundle(proto, meta: dict) -> None:
    """Put the bundle into an ONNX model's metadata_props, so a copied .onnx works alone. The
    copy has no sha256 of the file it sits in (it cannot); the JSON beside the file has."""
    embedded = {k: v for k, v in meta.items() if k != "onnx_sha256"}
    for p in list(proto.metadata_props):
        if p.key == EMBED_KEY:
            proto.metadata_props.remove(p)
    entry = proto.metadata_props.add()
    entry.key, entry.value = EMBED_KEY, json.dumps(embedded)


def embedded_bundle(onnx_path) -> Optional[dict]:
    """The bundle inside an ONNX file, or None where it has none."""
    try:
        import onnx

        props = onnx.load(str(onnx_path), load_external_data=False).metadata_props
    except Exception:
        return None
    for p in props:
        if p.key == EMBED_KEY:
            try:
                meta = json.loads(p.value)
                ClipSpec.from_dict(meta["clip_spec"])
                if isinstance(meta["classes"], list) and meta["classes"]:
                    return meta
            except (ValueError, KeyError, TypeError):
                return None
    return None


def read_bundle_of(artifact) -> dict:
    """The bundle of an artifact: the JSON beside it (NAME.onnx -> NAME.onnx.json), or for an ONNX
    copied without it, the bundle inside the model file (``meta["bundle_source"] == "embedded"``)."""
    mp = metadata_path(artifact)
    if mp.is_file() or not str(artifact).endswith(".onnx"):
        return read_metadata(mp)
    meta = embedded_bundle(artifact)
    if meta is None:
        raise CheckpointError(f"{artifact}: no {mp.name} beside it and no bundle inside it; export it again "
                              "(fts-edge export) or copy the .json with it")
    meta["bundle_source"] = "embedded"
    return meta


def commit_artifact(path, blob: bytes, meta: dict) -> Path:
    """Write a model file and its metadata as one step: both go to temporary names first; the old
    JSON is removed, then the model and the new JSON are renamed into place. A crash at any point
    leaves the previous pair, or the new model alone (its embedded bundle and no JSON), or the new
    pair; never a model beside another model's metadata."""
    import os

    from .artifacts import atomic_write_bytes

    path = Path(path)
    mp = metadata_path(path)
    tmp_model = path.with_name(f".{path.name}.{os.getpid()}.commit")
    tmp_meta = mp.with_name(f".{mp.name}.{os.getpid()}.commit")
    try:
        atomic_write_bytes(tmp_model, blob)
        write_metadata(tmp_meta, meta)
        if mp.exists():
            mp.unlink()
        os.replace(tmp_model, path)
        os.replace(tmp_meta, mp)
    finally:
        for leftover in (tmp_model, tmp_meta):
            if leftover.exists():
                leftover.unlink()
    return path
