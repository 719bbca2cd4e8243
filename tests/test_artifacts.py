"""A model and its metadata prove they are one: every load checks the JSON's sha256 against the
file, the class count against the output width and the ClipSpec against the input shape; writes
commit both together; a model copied alone carries its bundle inside."""
import json
import os
import shutil
from pathlib import Path

import onnx
import pytest

from fts_edge.bundle import EMBED_KEY, metadata_path
from fts_edge.cli import main


@pytest.fixture
def pair(tiny_run, tmp_path):
    d = tmp_path / "engines"
    d.mkdir()
    for f in (tiny_run["onnx"], metadata_path(tiny_run["onnx"])):
        shutil.copy(f, d / Path(f).name)
    return d / "student.onnx"


def _camera(model, capsys, tmp_path=None):
    rc = main(["camera", "--input", "synthetic://", "--model", str(model), "--max-windows", "2"])
    return rc, capsys.readouterr()


def test_the_onnx_carries_its_bundle(pair):
    props = {p.key: p.value for p in onnx.load(str(pair)).metadata_props}
    inside = json.loads(props[EMBED_KEY])
    beside = json.loads(metadata_path(pair).read_text())
    assert inside["classes"] == beside["classes"] and inside["clip_spec"] == beside["clip_spec"]
    assert "onnx_sha256" not in inside and len(beside["onnx_sha256"]) == 64


def test_a_copied_onnx_works_alone(pair, tmp_path, capsys):
    alone = tmp_path / "copied.onnx"
    shutil.copy(pair, alone)
    rc, out = _camera(alone, capsys)
    assert rc == 0, out.err
    assert '"prediction"' in out.out


def test_another_models_json_is_refused(pair, tiny_run, tmp_path, capsys):
    other = tmp_path / "other.onnx"
    from fts_edge.export import export_onnx
    export_onnx(tiny_run["student"], other, dynamic_batch=True)  # same classes, another file
    shutil.copy(metadata_path(other), metadata_path(pair))
    rc, out = _camera(pair, capsys)
    assert rc == 1 and "is not the model its metadata" in out.err and out.err.count("\n") == 1


@pytest.mark.parametrize("edit,message", [
    (lambda m: m.update(classes=m["classes"] + ["extra_a", "extra_b"]), "has 4 outputs, its metadata names 6 classes"),
    (lambda m: m["clip_spec"].update(frames=8), "its metadata says (3, 8, 24, 24)"),
])
def test_an_edited_json_is_refused(pair, capsys, edit, message):
    meta = json.loads(metadata_path(pair).read_text())
    edit(meta)  # the sha256 still matches the file: the shape checks catch it
    metadata_path(pair).write_text(json.dumps(meta))
    rc, out = _camera(pair, capsys)
    assert rc == 1 and message in out.err and out.err.count("\n") == 1


def test_a_crash_between_the_renames_never_pairs_a_model_with_old_metadata(pair, tiny_run, monkeypatch, capsys):
    """Kill the export after the new model is in place and before its JSON is: the old JSON is
    already gone, so the camera reads the new model's own bundle."""
    from fts_edge.export import export_onnx

    real = os.replace
    calls = []

    def replace(src, dst):
        calls.append(dst)
        if str(dst).endswith(".json") and len(calls) >= 2:
            raise KeyboardInterrupt  # the kill
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(tiny_run["student"], pair, dynamic_batch=True)
    monkeypatch.setattr(os, "replace", real)
    assert not metadata_path(pair).exists()
    assert not list(pair.parent.glob(".*commit*"))  # no temporaries left
    rc, out = _camera(pair, capsys)
    assert rc == 0, out.err


def test_build_engine_refuses_a_mismatched_pair(pair, tiny_run, tmp_path, capsys):
    meta = json.loads(metadata_path(pair).read_text())
    meta["onnx_sha256"] = "0" * 64
    metadata_path(pair).write_text(json.dumps(meta))
    assert main(["build-engine", str(pair), "--int8", "--onnx-only"]) == 1
    err = capsys.readouterr().err
    assert "is not the model its metadata" in err and err.count("\n") == 1
    assert not (pair.parent / "student.int8.onnx").exists()
