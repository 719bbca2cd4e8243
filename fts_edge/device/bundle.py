"""Bundle metadata: the JSON beside every checkpoint, ONNX and engine that every later stage reads
(classes, ClipSpec, input/output names, precision, parent hashes, tool versions).

This module imports no torch: the device half (runtime, camera, engine build from an ONNX,
verify, bench of a given model, doctor) reads and writes bundles through it alone.
"""
from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Dict, List, Optional

from ..core.artifacts import atomic_write_text, sha256_file
from ..core.errors import CheckpointError, EngineError, FtsError, first_line
from ..data.clipspec import ClipSpec


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
    from ..core.version import __version__

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


# -- the bundle inside the model file, and artifacts committed with their metadata ------------
EMBED_KEY = "fts_edge.bundle"


def embed_bundle(proto, meta: dict) -> None:
    """Put the bundle into an ONNX model's metadata_props, so a copied .onnx works alone. The
    copy has no sha256 of the file it sits in (it cannot); the JSON beside the file has. The
    bundle is the only metadata a model ships: what tools on the way left there (onnxsim's
    entries) is dropped."""
    embedded = {k: v for k, v in meta.items() if k not in SIDECAR_ONLY}
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = EMBED_KEY, json.dumps(embedded)


def embedded_bundle(onnx_path) -> Optional[dict]:
    """The bundle inside an ONNX file, or None where it has none (or it cannot be read)."""
    try:
        return _embedded(_load_proto(onnx_path), onnx_path)
    except CheckpointError:
        return None


# -- one loader: every command reads an artifact's bundle through load_bundle -------------------
# Keys that only the JSON beside a model holds (the model cannot record its own file's hash).
SIDECAR_ONLY = ("onnx_sha256",)
# What defines a model for the commands that run it: an engine's JSON must agree with the bundle
# inside the ONNX it was built from on these, where that ONNX is at hand.
MODEL_KEYS = ("classes", "clip_spec", "arch", "role", "streaming", "dataset")
ROLES = {"student": 3, "rgb": 3, "teacher": 2}  # a role and the channels its network reads
PRECISIONS = ("fp32", "fp16", "int8")


def _load_proto(path):
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as e:  # DecodeError, a truncated file, a folder
        raise CheckpointError(f"{path}: not a readable ONNX model ({type(e).__name__})") from None


def _embedded(proto, path) -> Optional[dict]:
    for prop in proto.metadata_props:
        if prop.key == EMBED_KEY:
            try:
                meta = json.loads(prop.value)
            except ValueError:
                raise CheckpointError(f"{path}: the bundle inside the model is not JSON; export it again") from None
            if not isinstance(meta, dict):
                raise CheckpointError(f"{path}: the bundle inside the model is not a JSON object; export it again")
            return meta
    return None


def differing_keys(a: dict, b: dict, prefix: str = "") -> List[str]:
    """Dotted names of the keys whose values differ between two bundles (``clip_spec.mean``)."""
    out = []
    for k in sorted(set(a) | set(b), key=str):
        va, vb = a.get(k, _MISSING), b.get(k, _MISSING)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += differing_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}")
    return out


_MISSING = object()


def _show(meta: dict, dotted: str) -> str:
    v = meta
    for part in dotted.split("."):
        v = v.get(part, _MISSING) if isinstance(v, dict) else _MISSING
    text = "(absent)" if v is _MISSING else json.dumps(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _disagree(path, what_a: str, a: dict, what_b: str, b: dict, keys: List[str], fix: str,
              error=CheckpointError) -> CheckpointError:
    shown = "; ".join(f"{k}: {_show(a, k)} vs {_show(b, k)}" for k in keys[:3])
    more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
    return error(f"{path}: {what_a} and {what_b} disagree on {', '.join(keys[:6])}{more} ({shown}); {fix}")


def _dims(value_info) -> tuple:
    return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in value_info.type.tensor_type.shape.dim)


def _graph_io(proto):
    inits = {i.name for i in proto.graph.initializer}
    ins = [(v.name, _dims(v)) for v in proto.graph.input if v.name not in inits]
    outs = [(v.name, _dims(v)) for v in proto.graph.output]
    return ins, outs


def check_bundle(meta: dict, path) -> dict:
    """The fields every command relies on: class names, a valid ClipSpec, a known role whose
    channels are the network's, a known precision."""
    try:
        spec = ClipSpec.from_dict(meta["clip_spec"])
        classes = meta["classes"]
        if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes):
            raise ValueError("the class names must be a list of non-empty strings")
        if len(set(classes)) != len(classes):
            raise ValueError("two classes have the same name")
    except (ValueError, KeyError, TypeError, FtsError) as e:
        raise CheckpointError(f"{path}: malformed bundle metadata ({type(e).__name__}: {first_line(e)})") from None
    role = meta.get("role")
    if role not in ROLES:
        raise CheckpointError(f"{path}: its bundle names the role {role!r}; fts-edge makes {', '.join(ROLES)}")
    channels = (meta.get("arch") or {}).get("in_channels", ROLES[role])
    if channels != ROLES[role]:
        raise CheckpointError(f"{path}: its bundle says role {role!r} (it reads {ROLES[role]} channels) but a network "
                              f"of {channels} input channels; export it again")
    if meta.get("precision", "fp32") not in PRECISIONS:
        raise CheckpointError(f"{path}: unknown precision {meta.get('precision')!r} (fp32, fp16 or int8)")
    if spec.layout != "NCTHW" or spec.color != "RGB":
        raise CheckpointError(f"{path}: clip layout {spec.layout} {spec.color}; fts-edge models take NCTHW RGB clips")
    return meta


def _check_onnx_graph(meta: dict, proto, path) -> None:
    """The graph must be what the bundle says: its input the ClipSpec's clip (or a streaming
    student's frame), its output one logit per class, its operators those of its precision."""
    spec = ClipSpec.from_dict(meta["clip_spec"])
    n_classes, channels = len(meta["classes"]), ROLES[meta["role"]]
    ins, outs = _graph_io(proto)
    stream = meta.get("streaming")
    refit = "the bundle does not belong to this graph; export it again"
    if stream:
        want_in = [n for n in stream["stages"][0]["inputs"]]
        if [n for n, _ in ins] != want_in:
            raise CheckpointError(f"{path}: the graph's inputs {[n for n, _ in ins][:3]}... are not the frame stage "
                                  "its "
                                  f"bundle describes; {refit}")
        frame = dict(ins)["frame"]
        if frame != (1, channels, 1, spec.size, spec.size):
            raise CheckpointError(f"{path}: the graph takes frames {frame}, its bundle says "
                                  f"{(1, channels, 1, spec.size, spec.size)}; {refit}")
    else:
        if len(ins) != 1 or len(outs) < 1:
            raise CheckpointError(f"{path}: a classifier has one input and one output; this graph has {len(ins)} and "
                                  f"{len(outs)}")
        shape = ins[0][1]
        want = (channels, *spec.input_shape[1:])
        if len(shape) != 5 or tuple(shape[1:]) != want:
            raise CheckpointError(f"{path}: the graph takes clips {shape}, its bundle says (N, "
                                  f"{', '.join(map(str, want))}) "
                                  f"(channels, frames, size, size); {refit}")
        width = outs[0][1][-1] if outs[0][1] else -1
        if width > 0 and width != n_classes:
            raise CheckpointError(f"{path}: the graph has {width} outputs, its bundle names {n_classes} classes; "
                                  f"{refit}")
    ops = {n.op_type for n in proto.graph.node}
    precision = meta.get("precision", "fp32")
    quantized = "QuantizeLinear" in ops or "DequantizeLinear" in ops
    if quantized != (precision == "int8"):
        raise CheckpointError(f"{path}: its bundle says {precision} but the graph "
                              f"{'has' if quantized else 'has no'} Q/DQ nodes; {refit}")


def _check_stages(meta: dict, path) -> None:
    """A streaming student's stage files: beside the main file, each the one the bundle records."""
    from .streamplan import stage_file

    stream = meta["streaming"]
    for k, st in enumerate(stream["stages"][1:], 1):
        f = stage_file(path, st["name"])
        if not f.is_file():
            raise CheckpointError(f"{f}: missing; a streaming model is {Path(path).name} and its stage files beside it "
                                  "(export it again)")
        if sha256_file(f) != st.get("sha256"):
            raise CheckpointError(f"{f}: not the {st['name']} stage the bundle of {Path(path).name} records "
                                  "(sha256 differs); export or build them again")
        ins, outs = _graph_io(_load_proto(f))
        if [n for n, _ in ins] != st["inputs"] or [n for n, _ in outs] != st["outputs"]:
            raise CheckpointError(f"{f}: its inputs and outputs are not the {st['name']} stage the bundle describes; "
                                  "export it again")
        if "logits" in dict(outs):
            width = dict(outs)["logits"][-1]
            if width > 0 and width != len(meta["classes"]):
                raise CheckpointError(f"{f}: the graph has {width} outputs, the bundle of {Path(path).name} names "
                                      f"{len(meta['classes'])} classes; export it again")


def _onnx_bundle(path: Path) -> dict:
    proto = _load_proto(path)
    embedded = _embedded(proto, path)
    if embedded is None:
        raise CheckpointError(f"{path}: no bundle inside the model (class names, clip geometry); export it again "
                              "with fts-edge export")
    check_bundle(embedded, path)
    sha = sha256_file(path)
    mp = metadata_path(path)
    if mp.is_file():
        side = _read_json(mp)
        if side.get("onnx_sha256") != sha:
            raise CheckpointError(f"{path}: the file is not the model its metadata ({mp.name}) describes (sha256 "
                                  "differs); export or build it again, or remove the stale JSON")
        keys = differing_keys({k: v for k, v in side.items() if k not in SIDECAR_ONLY}, embedded)
        if keys:
            raise _disagree(path, f"its JSON ({mp.name})", side, "the bundle inside the model", embedded, keys,
                            "one was edited after export: export it again")
    meta = {**embedded, "onnx_sha256": sha}
    _check_onnx_graph(meta, proto, path)
    if meta.get("streaming"):
        _check_stages(meta, path)
    return meta


def _parent_onnx(meta: dict, engine: Path) -> Optional[Path]:
    """The ONNX an engine was built from, where it is at hand (as recorded, or beside the engine)."""
    parent = meta.get("parent_onnx")
    if not parent:
        return None
    for cand in (Path(parent), engine.parent / Path(parent).name):
        if cand.is_file():
            return cand
    return None


def _engine_bundle(path: Path) -> dict:
    mp = metadata_path(path)
    if not mp.is_file():
        raise EngineError(f"{path}: no metadata beside the engine ({mp.name}); rebuild it with fts-edge build-engine")
    meta = _read_json(mp)
    if not isinstance(meta.get("engine"), dict) or not meta["engine"].get("sha256"):
        raise EngineError(f"{mp}: not the metadata of an fts-edge engine (no 'engine' section with its sha256); "
                              "rebuild it with fts-edge build-engine")
    check_bundle(meta, path)
    rebuild = f"fts-edge build-engine {meta.get('rebuild_from') or '<model.onnx>'} --{meta.get('precision', 'fp16')}"
    if sha256_file(path) != meta["engine"]["sha256"]:
        raise EngineError(f"{path}: the file is not the engine its metadata describes (sha256 differs); rebuild it: "
                              f"{rebuild}")
    parent = _parent_onnx(meta, path)
    if parent is not None and sha256_file(parent) == meta.get("parent_onnx_sha256"):
        embedded = _embedded(_load_proto(parent), parent)
        if embedded is not None:
            keys = differing_keys({k: meta.get(k, _MISSING_JSON) for k in MODEL_KEYS},
                                  {k: embedded.get(k, _MISSING_JSON) for k in MODEL_KEYS})
            if keys:
                raise _disagree(path, f"its metadata ({mp.name})", meta, f"the bundle inside {parent.name}", embedded,
                                keys, f"one was edited: rebuild the engine ({rebuild})", EngineError)
    stream = meta.get("streaming")
    if stream and meta.get("streaming_stage", stream["stages"][0]["name"]) == stream["stages"][0]["name"]:
        _check_stage_engines(meta, path)  # the frame stage's engine is the model: the others lie beside it
    return meta


_MISSING_JSON = None  # an absent key compares as null on both sides


def _check_stage_engines(meta: dict, path: Path) -> None:
    from .streamplan import stage_file

    for st in meta["streaming"]["stages"][1:]:
        f = stage_file(path, st["name"])
        if not f.is_file():
            raise EngineError(f"{f}: missing; a streaming engine is {path.name} and its stage engines beside it "
                                  f"(rebuild: fts-edge build-engine {meta.get('rebuild_from') or '<model.onnx>'})")
        m = _engine_bundle(f)
        if m.get("streaming_stage") != st["name"] or m.get("streaming") != meta["streaming"]:
            raise EngineError(f"{f}: not the {st['name']} stage of the model {path.name} was built from; rebuild "
                                  "them together")


def _read_json(mp: Path) -> dict:
    try:
        meta = json.loads(mp.read_text())
    except (ValueError, UnicodeDecodeError, OSError) as e:
        raise CheckpointError(f"{mp}: not readable bundle metadata ({type(e).__name__})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{mp}: not a bundle (a JSON object)")
    return meta


MODEL_SUFFIXES = (".engine", ".onnx", ".pt", ".pth")


def load_bundle(path) -> dict:
    """The checked bundle of any artifact: the one loader every command and the Python API read.

    - ``.onnx``: the bundle inside the model is the truth; a JSON beside it must be that bundle
      (plus the file's sha256) or the load is refused, naming the keys that differ. The graph's
      input must be the ClipSpec's clip (or frame), its output one logit per class, its Q/DQ nodes
      those of its precision; a streaming student's stage files each the one recorded.
    - ``.engine``: its JSON (an engine holds no metadata of its own), bound to the file by sha256
      and, where the ONNX it was built from is at hand, equal to that ONNX's bundle on the model's
      keys; a streaming engine's stage engines each checked the same way.
    - ``.pt``: a checkpoint needs torch: ``fts_edge.load`` reads it (``nets.checkpoint``); the
      device half refuses it here, saying so.

    Every field is checked once, here: class names, ClipSpec, role against channels, precision.
    Returns the bundle dict (with ``onnx_sha256`` for an ONNX)."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such model (an .engine, .onnx or checkpoint .pt)")
    if p.is_dir():
        raise CheckpointError(f"{p}: is a folder; name a model file (.engine, .onnx or .pt)")
    if p.suffix == ".onnx":
        return _onnx_bundle(p)
    if p.suffix == ".engine":
        return _engine_bundle(p)
    if p.suffix in (".pt", ".pth"):
        raise CheckpointError(f"{p}: a training checkpoint; running it needs torch (pip install 'fts-edge[train]'), "
                              "and deploying it an export first: fts-edge export " + str(p))
    raise CheckpointError(f"{p}: unknown model type {p.suffix!r} (use .engine, .onnx or .pt)")


def read_bundle_of(artifact) -> dict:
    """The checked bundle of an artifact (``load_bundle``)."""
    return load_bundle(artifact)


def commit_artifact(path, blob: bytes, meta: dict, meta_path=None) -> Path:
    """Write a model file and its metadata as one step: both go to temporary names first; the old
    JSON is removed, then the model and the new JSON are renamed into place. A crash at any point
    leaves the previous pair, or the new model alone (its embedded bundle and no JSON), or the new
    pair; never a model beside another model's metadata. ``meta_path`` defaults to NAME.json."""
    import os

    from ..core.artifacts import atomic_write_bytes

    path = Path(path)
    mp = Path(meta_path) if meta_path else metadata_path(path)
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


def write_onnx(path, proto, meta: dict) -> dict:
    """Commit an ONNX model with its bundle inside and the same bundle (plus the file's sha256)
    beside it: the one way every ONNX of the toolkit is written. Returns the JSON's bundle."""
    import hashlib

    embedded = {k: v for k, v in meta.items() if k not in SIDECAR_ONLY}
    embed_bundle(proto, embedded)
    blob = proto.SerializeToString()
    side = {**embedded, "onnx_sha256": hashlib.sha256(blob).hexdigest()}
    commit_artifact(path, blob, side)
    return side
