"""A model and its metadata prove they are one: every load checks the JSON's sha256 against the
file, the class count against the output width and the ClipSpec against the input shape; writes
commit both together; a model copied alone carries its bundle inside."""
import json
import os
import re
import shutil
from pathlib import Path

import onnx
import pytest
from conftest import lie

from fts_edge.cli import main
from fts_edge.device.bundle import EMBED_KEY, metadata_path


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
    from fts_edge.export.onnx import export_onnx
    export_onnx(tiny_run["student"], other, dynamic_batch=True)  # same classes, another file
    shutil.copy(metadata_path(other), metadata_path(pair))
    rc, out = _camera(pair, capsys)
    assert rc == 1 and "is not the model its metadata" in out.err and out.err.count("\n") == 1


@pytest.mark.parametrize("edit,where,message", [
    (lambda m: m.update(classes=m["classes"][::-1]), "beside", "disagree on classes"),
    (lambda m: m["clip_spec"].update(frames=8), "beside", "disagree on clip_spec.frames"),
    (lambda m: m["clip_spec"].update(mean=[0.5, 0.5, 0.5]), "inside", "disagree on clip_spec.mean"),
    (lambda m: m.update(classes=m["classes"] + ["extra_a", "extra_b"]), "both", "has 4 outputs, its bundle names 6 "
                                                                                "classes"),
    (lambda m: m["clip_spec"].update(frames=8), "both", "its bundle says (N, 3, 8, 24, 24)"),
])
def test_a_lying_bundle_is_refused(pair, capsys, edit, where, message):
    lie(pair, edit, where)  # the sha256 beside the file stays true: the bundles or the graph contradict the lie
    rc, out = _camera(pair, capsys)
    assert rc == 1 and message in out.err and out.err.count("\n") == 1, out.err


def test_a_crash_between_the_renames_never_pairs_a_model_with_old_metadata(pair, tiny_run, monkeypatch, capsys):
    """Kill the export after the new model is in place and before its JSON is: the old JSON is
    already gone, so the camera reads the new model's own bundle."""
    from fts_edge.export.onnx import export_onnx

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


# -- the camera's outputs survive a stop ---------------------------------------------------------
@pytest.mark.parametrize("sig,rc", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_stopped_camera_finishes_its_video_and_summary(pair, tmp_path, sig, rc):
    import signal
    import subprocess
    import sys
    import time

    import cv2

    video, lines = tmp_path / "out.avi", tmp_path / "lines.jsonl"
    env = dict(os.environ, FTS_EDGE_PROGRESS="0", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    p = subprocess.Popen([sys.executable, "-m", "fts_edge", "camera", "--input", "synthetic://?size=64", "--realtime",
                          "--model", str(pair), "--every", "2", "--output", str(video), "--json-out", str(lines)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and (not lines.exists() or lines.read_text().count('"prediction"') < 3):
        time.sleep(0.2)
    p.send_signal(getattr(signal, sig))
    out, err = p.communicate(timeout=60)
    assert p.returncode == rc, err
    rows = [json.loads(line) for line in lines.read_text().splitlines()]
    summary = rows[-1]
    assert summary["type"] == "summary" and summary["stopped"] == sig and summary["classifications"] >= 3
    cap = cv2.VideoCapture(str(video))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n >= 3, "the video should play back with its frames"


def test_unusable_outputs_fail_at_start(pair, tmp_path, capsys):
    for output, message in ((tmp_path / "x.xyz", "unknown video type"), (tmp_path, "is a folder")):
        assert main(["camera", "--input", "synthetic://", "--model", str(pair), "--output", str(output),
                     "--max-windows", "1"]) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    existing = tmp_path / "old.avi"
    existing.write_bytes(b"keep me")
    assert main(["camera", "--input", "synthetic://", "--model", str(pair), "--output", str(existing),
                 "--max-windows", "1"]) == 1
    assert "pass --overwrite" in capsys.readouterr().err and existing.read_bytes() == b"keep me"


def test_a_source_that_ends_early_is_not_success(pair, tmp_path, capsys):
    from fts_edge.data.synthetic import render_clip
    from fts_edge.data.video import write_video

    short = tmp_path / "short.avi"
    write_video(short, render_clip(0, 0, 0, 3, 32, 32))  # 3 frames: the model wants 4
    assert main(["camera", "--input", str(short), "--model", str(pair)]) == 1
    assert "before one window of 4 frames" in capsys.readouterr().err
    full = tmp_path / "full.avi"
    write_video(full, render_clip(0, 0, 0, 40, 32, 32))
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])  # the container still declares 40 frames
    rc = main(["camera", "--input", str(cut), "--model", str(pair), "--json-out", str(tmp_path / "l.jsonl")])
    err = capsys.readouterr().err
    assert rc == 1 and "truncated or damaged" in err


@pytest.mark.parametrize("edit,where,message", [
    (lambda m: m.update(classes=m["classes"][::-1]), "beside", "disagree on classes"),
    (lambda m: m["clip_spec"].update(mean=[0.5, 0.5, 0.5]), "inside", "disagree on clip_spec.mean"),
    (lambda m: m.update(role="teacher"), "both", "says role 'teacher'"),
    (lambda m: m.update(precision="int8"), "both", "says int8 but the graph has no Q/DQ"),
])
def test_the_python_api_refuses_the_same_lies(pair, edit, where, message):
    import fts_edge

    lie(pair, edit, where)
    with pytest.raises(fts_edge.FtsError, match=re.escape(message)):
        fts_edge.load(pair)
    with pytest.raises(fts_edge.FtsError, match=re.escape(message)):
        fts_edge.bundle(pair)


def test_a_model_far_below_what_training_measured_is_not_quantized(pair, tiny_run):
    """A bundle whose preprocessing lies in the model and beside it alike passes every file check;
    the model then scores far below the accuracy its bundle records from training, on the same
    split: build-engine refuses to quantize it."""
    from fts_edge.core.errors import ExportError
    from fts_edge.data.clips import validation_set
    from fts_edge.data.clipspec import ClipSpec
    from fts_edge.device.build import check_as_trained
    from fts_edge.device.bundle import load_bundle

    meta = load_bundle(pair)
    spec = ClipSpec.from_dict(meta["clip_spec"])
    meta["dataset"] = {**meta["dataset"], "per_class": 40}  # a larger split of the same motion set: 40 clips
    clips, labels = validation_set(spec, meta, limit=40)
    honest = check_as_trained(pair, {**meta, "validation": {"top1": 0.0}}, clips, labels)
    measured = honest["top1"]
    assert check_as_trained(pair, {**meta, "validation": {"top1": measured}}, clips, labels)["checked"]
    with pytest.raises(ExportError, match="training measured 100.0%.*is not what it was trained with"):
        check_as_trained(pair, {**meta, "validation": {"top1": 100.0}}, clips, labels)
