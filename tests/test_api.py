"""The Python API as docs/api.md shows it: every example of the page runs, in order, in one
namespace, in a folder holding a model and videos, and says what the page says it does."""
import re
import shutil
from pathlib import Path

import pytest

from fts_edge.device.bundle import metadata_path

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _blocks():
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_page_has_examples_of_every_entry_point():
    code = "\n".join(_blocks())
    for name in ("fts_edge.load(", ".predict(", ".classify(", ".stream(", "fts_edge.fit(",
                 "fts_edge.export_checkpoint(",
                 "fts_edge.build_engine("):
        assert name in code, name


def test_every_example_of_the_page_runs(tiny_run, tmp_path, monkeypatch, capsys):
    from conftest import _tiny_video

    (tmp_path / "engines").mkdir()
    for f in (tiny_run["onnx"], metadata_path(tiny_run["onnx"])):
        shutil.copy(f, tmp_path / "engines" / Path(f).name)
    for i in range(2):
        _tiny_video(tmp_path / "videos" / f"clip{i}.avi", i, i, frames=16, size=40)
    monkeypatch.chdir(tmp_path)
    ns = {}
    for block in _blocks():
        exec(compile(block, str(DOC), "exec"), ns)
    out = capsys.readouterr().out
    model, rows, probs = ns["model"], ns["rows"], ns["probs"]
    assert "<fts_edge.Model onnxruntime" in out and len(model.classes) == 4
    assert [Path(r["video"]).name for r in rows] == ["clip0.avi", "clip1.avi"]
    assert all(r["label"] in model.classes for r in rows)
    assert probs.shape == (2, 4) and abs(float(probs.sum(1).mean()) - 1) < 1e-5
    assert "3 classifications" in out  # the stream's summary, after max_windows=3
    assert (tmp_path / "runs" / "api" / "student" / "last.pt").exists()
    assert (tmp_path / "engines" / "api_student.int8.cpu.onnx").exists()


def test_load_refuses_what_is_not_a_model(tmp_path):
    import fts_edge

    (tmp_path / "x.onnx").write_bytes(b"not a model")
    with pytest.raises(fts_edge.FtsError, match="not a readable ONNX model"):
        fts_edge.load(tmp_path / "x.onnx")
    with pytest.raises(fts_edge.FtsError, match="no such model"):
        fts_edge.load(tmp_path / "missing.engine")
