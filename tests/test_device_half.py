"""The device half runs without torch: camera, build-engine from an ONNX, verify, bench --model and
doctor, each in a separate Python process that cannot import torch.

The process is FTS_EDGE_DEVICE_PYTHON where that is set (.ci/run makes a real venv with only the
core requirements: numpy, OpenCV, onnx, onnxruntime), else this interpreter with torch blocked
(tests/notorch). The camera's top-1 per window there is compared with what this (torch) process
gives on the same video.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fts_edge.cli import main
from fts_edge.device.bundle import metadata_path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
DEVICE_PYTHON = os.environ.get("FTS_EDGE_DEVICE_PYTHON")


def device(args, extra_path=(), check_rc=None):
    """Run `fts-edge ARGS` as the device would: no torch importable."""
    env = dict(os.environ, FTS_EDGE_PROGRESS="0")
    paths = [str(p) for p in extra_path]
    if DEVICE_PYTHON:
        py = DEVICE_PYTHON
    else:
        py = sys.executable
        paths.append(str(TESTS / "notorch"))
    paths.append(str(ROOT))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    r = subprocess.run([py, "-m", "fts_edge", *map(str, args)], capture_output=True, text=True, env=env, timeout=600)
    if check_rc is not None:
        assert r.returncode == check_rc, f"exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r


def test_torch_is_really_absent_there():
    r = device(["doctor", "--json"], check_rc=0)
    rep = json.loads(r.stdout)
    torch_check = next(c for c in rep["checks"] if c["name"] == "torch")
    if DEVICE_PYTHON:
        assert not torch_check["ok"]
    code = "import fts_edge.cli; fts_edge.cli.build_parser(); import torch"
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join(([] if DEVICE_PYTHON else [str(TESTS / "notorch")]) + [str(ROOT)]))
    r = subprocess.run([DEVICE_PYTHON or sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "No module named 'torch'" in r.stderr


def test_device_modules_import_no_torch():
    import pkgutil

    import fts_edge

    half = ("fts_edge.core", "fts_edge.data", "fts_edge.device", "fts_edge.live")  # every module of the device half
    mods = ["fts_edge", "fts_edge.api", "fts_edge.cli", "fts_edge.bench.model"] + \
        [m.name for m in pkgutil.walk_packages(fts_edge.__path__, "fts_edge.") if m.name.startswith(half)]
    assert "fts_edge.device.runtime" in mods and "fts_edge.live.camera" in mods
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in mods) + \
           "assert 'torch' not in sys.modules\nprint('ok')"
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join(([] if DEVICE_PYTHON else [str(TESTS / "notorch")]) + [str(ROOT)]))
    r = subprocess.run([DEVICE_PYTHON or sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


@pytest.fixture(scope="module")
def bundle(tiny_run, tmp_path_factory):
    d = tmp_path_factory.mktemp("device") / "engines"
    d.mkdir()
    for f in (tiny_run["onnx"], metadata_path(tiny_run["onnx"])):
        shutil.copy(f, d / Path(f).name)
    return d


def _predictions(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if '"prediction"' in line]


def test_device_session_without_torch(bundle, tiny_run, shared_data, tmp_path):
    video = shared_data / "vtest.avi"
    onnx = bundle / "student.onnx"
    # the INT8 files, calibrated and checked on the video (no dataset on a device); no TensorRT here
    r = device(["build-engine", onnx, "--int8", "--calib-input", video, "--calib-clips", "8", "--min-agreement", "0.5",
                "--onnx-only"], check_rc=0)
    assert "student.int8.cpu.onnx" in r.stdout and "--onnx-only" in r.stdout
    r = device(["build-engine", onnx, "--int8", "--calib-input", video, "--calib-clips", "8", "--min-agreement", "0.5"],
               check_rc=3)
    assert "needs TensorRT on the target device" in r.stderr and r.stderr.count("\n") == 1
    # the camera on the ONNX and the INT8 ONNX: the same top-1 per window as this torch process
    for name, reference in (("student.onnx", tiny_run["student"]), ("student.int8.cpu.onnx",
                                                                    bundle / "student.int8.cpu.onnx")):
        out = tmp_path / f"device-{name}.jsonl"
        device(["camera", "--input", video, "--model", bundle / name, "--max-windows", "8", "--every", "5",
                "--json-out", out], check_rc=0)
        ref = tmp_path / f"torch-{name}.jsonl"
        assert main(["camera", "--input", str(video), "--model", str(reference), "--max-windows", "8", "--every", "5",
                     "--json-out", str(ref)]) == 0
        got, want = _predictions(out), _predictions(ref)
        assert len(got) == len(want) == 8
        assert [g["frame"] for g in got] == [w["frame"] for w in want]
        assert [g["top"][0]["label"] for g in got] == [w["top"][0]["label"] for w in want]
        np.testing.assert_allclose([g["top"][0]["score"] for g in got], [w["top"][0]["score"] for w in want], atol=1e-3)
    # verify, bench --model and doctor
    r = device(["verify", bundle / "student.int8.onnx", "--input", video, "--clips", "6", "--runs", "3",
                "--min-agreement", "0.5", "--json"], check_rc=0)
    rep = json.loads(r.stdout)
    assert rep["reference"].endswith("student.onnx") and rep["clips"] == 6 and rep["passed"]
    device(["bench", "--model", bundle / "student.int8.cpu.onnx", "--input", video, "--runs", "3", "--out",
            tmp_path / "bench"], check_rc=0)
    saved = json.loads((tmp_path / "bench" / "bench_model.json").read_text())
    assert saved["stages"]["inference_per_window"]["runs"] == 3
    r = device(["predict", video, "--model", bundle / "student.int8.cpu.onnx", "--json"], check_rc=0)
    assert json.loads(r.stdout)[0]["label"]
    device(["doctor"], check_rc=0)


def test_engine_path_without_torch_through_the_standin(bundle, shared_data, tmp_path):
    """build-engine --fp16 -> .engine -> camera, with TensorRT's stand-in and no torch."""
    standin = TESTS / "standin"
    d = tmp_path / "e"
    shutil.copytree(bundle, d)
    device(["build-engine", d / "student.onnx", "--fp16"], extra_path=[standin], check_rc=0)
    out = tmp_path / "engine.jsonl"
    device(["camera", "--input", shared_data / "vtest.avi", "--model", d / "student.fp16.engine", "--max-windows", "3",
            "--json-out", out], extra_path=[standin], check_rc=0)
    assert len(_predictions(out)) == 3


def test_streaming_student_on_the_device_without_torch(shared_data, tmp_path):
    """The streaming student's stage graphs: INT8 (ONNX Runtime's flavour and TensorRT's), then
    TensorRT engines of every stage (the stand-in), then the camera on each, all without torch."""
    from test_streaming import _export

    _export(tmp_path, window=6, size=32)
    onnx = tmp_path / "s.onnx"
    video = shared_data / "vtest.avi"
    standin = TESTS / "standin"
    device(
        [
            "build-engine",
            onnx,
            "--fp16",
            "--int8",
            "--calib-input",
            video,
            "--calib-clips",
            "4",
            "--min-agreement",
            "0",
        ],
        extra_path=[standin],
        check_rc=0,
    )
    for model in ("s.int8.cpu.onnx", "s.fp16.engine", "s.int8.engine"):
        out = tmp_path / f"{model}.jsonl"
        device(["camera", "--input", video, "--model", tmp_path / model, "--max-windows", "3", "--json-out", out],
               extra_path=[standin], check_rc=0)
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert rows[0]["streaming"] is True and len(_predictions(out)) == 3, model


def test_a_failed_int8_check_keeps_the_previous_pair(bundle, shared_data, tmp_path):
    d = tmp_path / "e"
    shutil.copytree(bundle, d)
    video = shared_data / "vtest.avi"
    device(["build-engine", d / "student.onnx", "--int8", "--calib-input", video, "--calib-clips", "4",
            "--min-agreement", "0", "--onnx-only"], check_rc=0)
    good = (d / "student.int8.onnx").read_bytes(), metadata_path(d / "student.int8.onnx").read_text()
    r = device(["build-engine", d / "student.onnx", "--int8", "--calib-input", video, "--calib-clips", "4",
                "--min-agreement", "1.01"], check_rc=2)  # out of range: refused at the start
    assert "--min-agreement must be from 0.0 to 1.0" in r.stderr
    # a check that cannot pass: the candidate is kept aside, the good pair stays
    import fts_edge.device.build as deploy
    from fts_edge.core.errors import ExportError
    impossible = deploy.BuildSettings(int8=True, calib_input=str(video), calib_clips=4, onnx_only=True)
    object.__setattr__(impossible, "min_agreement", 1.0 + 1e-9)  # past what any model can reach (the flag refuses it)
    with pytest.raises(ExportError, match="not written"):
        deploy.build_engine(str(d / "student.onnx"), impossible, say=lambda m: None)
    assert ((d / "student.int8.onnx").read_bytes(), metadata_path(d / "student.int8.onnx").read_text()) == good
    assert (d / "student.int8.rejected.onnx").exists()
    assert not list(d.glob(".*candidate*"))
