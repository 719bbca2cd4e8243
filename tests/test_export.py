import json

import numpy as np
import onnx
import pytest
import torch

from fts_edge.cli import main
from fts_edge.core.errors import CheckpointError, ExportError
from fts_edge.export.onnx import export_onnx, metadata_path, ort_session, run_onnx
from fts_edge.nets.checkpoint import load_checkpoint, save_checkpoint


def test_export_writes_checked_onnx_with_metadata(tiny_run):
    rep = tiny_run["export"]
    m = onnx.load(str(tiny_run["onnx"]))
    onnx.checker.check_model(m)
    assert [i.name for i in m.graph.input] == ["clip"] and [o.name for o in m.graph.output] == ["logits"]
    assert m.opset_import[0].version == 17
    dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 4, 24, 24]
    assert rep["simplified"] == "onnxsim" and rep["nodes"] <= rep["nodes_before"]
    meta = json.loads(metadata_path(tiny_run["onnx"]).read_text())
    assert meta["classes"] and meta["clip_spec"]["frames"] == 4 and meta["precision"] == "fp32"
    assert len(meta["onnx_sha256"]) == 64 and len(meta["checkpoint_sha256"]) == 64


def test_parity_on_real_clips_is_tight(tiny_run, shared_data):  # vtest.avi clips
    p = tiny_run["export"]["parity"]
    assert p["clips"] >= 3 and p["top1_agreement"] == 1.0 and p["max_rel_diff"] < 1e-4


def test_dynamic_batch(tiny_run, tmp_path):
    rep = export_onnx(tiny_run["student"], tmp_path / "dyn.onnx", dynamic_batch=True)
    x = np.random.default_rng(0).standard_normal((3, 3, 4, 24, 24)).astype(np.float32)
    assert run_onnx(ort_session(rep["onnx"]), x).shape == (3, 4)


def test_a_teacher_is_not_exported(tiny_run, tmp_path):
    with pytest.raises(CheckpointError, match="flow-teacher"):
        export_onnx(tiny_run["teacher"], tmp_path / "t.onnx")


def test_checkpoint_of_another_architecture_is_one_line(tiny_run, tmp_path, capsys):
    ck = load_checkpoint(tiny_run["student"])
    ck["arch"] = dict(ck["arch"], width=0.25)  # claims a wider network than its weights
    save_checkpoint(tmp_path / "wrong.pt", ck)
    assert main(["export", str(tmp_path / "wrong.pt"), "--out", str(tmp_path / "w.onnx")]) == 1
    err = capsys.readouterr().err
    assert "do not fit the architecture" in err and err.count("\n") == 1


def test_garbage_checkpoint_is_one_line(tmp_path, capsys):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    assert main(["export", str(tmp_path / "junk.pt")]) == 1
    assert "not a readable fts-edge checkpoint" in capsys.readouterr().err


def test_parity_failure_is_loud(tiny_run, tmp_path):
    ck = load_checkpoint(tiny_run["student"])
    from fts_edge.export.onnx import parity
    from fts_edge.nets.checkpoint import build_from_checkpoint
    model = build_from_checkpoint(ck)
    with torch.no_grad():
        model.fc.bias += 5.0 * torch.arange(model.fc.bias.numel())  # the ONNX no longer matches this model
    clips = np.random.default_rng(0).standard_normal((2, 3, 4, 24, 24)).astype(np.float32)
    with pytest.raises(ExportError, match="parity check failed"):
        parity(model, tiny_run["onnx"], clips, rel_tol=1e-4)


def test_missing_onnxsim_keeps_the_plain_graph(tiny_run, tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "onnxsim", None)
    rep = export_onnx(tiny_run["student"], tmp_path / "plain.onnx")
    assert rep["simplified"].startswith("onnxsim missing") and rep["parity"]["top1_agreement"] == 1.0
