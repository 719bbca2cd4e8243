import contextlib
import json
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from fts_edge.cli import main
from fts_edge.core.errors import CheckpointError, SourceError
from fts_edge.data.clipspec import ClipSpec
from fts_edge.data.sources import Resilient, Source, SyntheticSource
from fts_edge.data.transforms import preprocess_clip
from fts_edge.data.video import read_frames
from fts_edge.device.runtime import load_classifier
from fts_edge.live import stream as stream_mod
from fts_edge.live.camera import CameraSettings, run
from fts_edge.live.stream import ClipBuffer, EventDetector, Smoother

SPEC = ClipSpec(frames=4, size=8, resize=8)


def _frames(n, h=8, w=8):
    return [np.full((h, w, 3), 10 * i, np.uint8) for i in range(n)]


def test_ring_window_is_in_time_order_and_never_partial():
    buf = ClipBuffer(SPEC)
    fr = _frames(7)
    for f in fr[:3]:
        buf.push(f)
    assert not buf.full
    with pytest.raises(RuntimeError):
        buf.window()
    for f in fr[3:]:
        buf.push(f)
    np.testing.assert_array_equal(buf.window(), preprocess_clip(np.stack(fr[3:7]), SPEC))


def test_strided_spec_sees_every_stride_th_frame_like_training():
    """A model trained on frames 2 apart must get frames 2 apart live, ending at the newest frame."""
    spec = SPEC.replace(stride=2)  # span 7
    buf = ClipBuffer(spec)
    fr = _frames(12)
    for i, f in enumerate(fr):
        buf.push(f)
        assert buf.full == (i + 1 >= spec.span)
        if buf.full:
            picked = fr[i + 1 - spec.span:i + 1:spec.stride]
            assert len(picked) == spec.frames
            np.testing.assert_array_equal(buf.window(), preprocess_clip(np.stack(picked), spec))


def test_each_frame_is_preprocessed_once(monkeypatch):
    calls = []
    real = stream_mod.preprocess_frame
    monkeypatch.setattr(stream_mod, "preprocess_frame", lambda f, s: calls.append(1) or real(f, s))
    buf = ClipBuffer(SPEC)
    for f in _frames(20):
        buf.push(f)
        if buf.full:
            buf.window()
    assert len(calls) == 20


def test_smoothing_and_hysteresis_events():
    sm = Smoother(2)
    np.testing.assert_allclose(sm(np.array([1.0, 0.0])), [1.0, 0.0])
    np.testing.assert_allclose(sm(np.array([0.0, 1.0])), [0.5, 0.5])
    ev = EventDetector(["walk", "run"], on=0.6, off=0.4)
    seq = [0.5, 0.7, 0.55, 0.45, 0.3, 0.65]
    out = [ev(np.array([s, 1 - s]), i, float(i)) for i, s in enumerate(seq)]
    starts = [(i, e["label"]) for i, es in enumerate(out) for e in es if e["phase"] == "begin"]
    ends = [(i, e["label"]) for i, es in enumerate(out) for e in es if e["phase"] == "end"]
    # walk starts at 0.7 and survives 0.55 and 0.45 (above off); ends at 0.3; run is the mirror image
    assert starts == [(1, "walk"), (4, "run"), (5, "walk")]
    assert ends == [(4, "walk"), (5, "run")]


def test_backends_agree(tiny_run):
    import fts_edge

    onnx_clf = load_classifier(tiny_run["onnx"])
    torch_clf = fts_edge.load(tiny_run["student"], device="cpu").classifier  # a checkpoint: the API's loader
    with pytest.raises(CheckpointError, match="a training checkpoint; running it needs torch"):
        load_classifier(tiny_run["student"])  # the device half runs exported models only
    assert onnx_clf.classes == torch_clf.classes and onnx_clf.spec == torch_clf.spec
    x = np.random.default_rng(0).standard_normal((3, 3, 4, 24, 24)).astype(np.float32)
    np.testing.assert_allclose(onnx_clf.classify(x), torch_clf.classify(x), atol=1e-5)
    with pytest.raises(ValueError, match="takes clips"):
        onnx_clf.classify(np.zeros((1, 3, 5, 24, 24), np.float32))


def _lines(path):
    return [json.loads(line) for line in open(path)]


def test_camera_on_a_file_equals_offline_classification(tiny_run, shared_data, tmp_path):
    out = tmp_path / "lines.jsonl"
    assert main(["camera", "--input", str(shared_data / "vtest.avi"), "--model", str(tiny_run["onnx"]),
                 "--headless", "--every", "7", "--max-windows", "6", "--json-out", str(out)]) == 0
    rows = [r for r in _lines(out) if r["type"] == "prediction"]
    assert [r["frame"] for r in rows] == [3 + 7 * i for i in range(6)]
    clf = load_classifier(tiny_run["onnx"])
    frames = read_frames(shared_data / "vtest.avi", max_frames=50)
    for r in rows:
        clip = preprocess_clip(frames[r["frame"] - 3: r["frame"] + 1], clf.spec)
        probs = clf.classify(clip)[0]
        for t in r["top"]:
            assert abs(probs[clf.classes.index(t["label"])] - t["score"]) < 1e-5
    summary = _lines(out)[-1]
    assert summary["type"] == "summary" and summary["sources"][0]["dropped_windows"] == 0


class Flaky(Source):
    """Real frames from a video, then a device that stops answering for a while."""

    live = True

    def __init__(self, frames, fail_at, state):
        self.frames_, self.i, self.fail_at, self.state = frames, 0, fail_at, state
        self.uri, self.fps = "flaky://0", 30.0

    def read(self):
        if self.state["reads"] >= self.fail_at and self.state["failures"] < 2:
            self.state["failures"] += 1
            raise OSError("device stopped answering")
        self.state["reads"] += 1
        if self.state["reads"] > 40:
            return None
        f = self.frames_[self.i % len(self.frames_)]
        self.i += 1
        return f


def test_a_source_that_fails_mid_run_is_reopened_and_reported(tiny_run, shared_data, tmp_path):
    frames = list(read_frames(shared_data / "Megamind.avi", max_frames=10, resize_short=64))
    state = {"reads": 0, "failures": 0}
    opens = []

    def opener():
        opens.append(1)
        return Flaky(frames, 12, state)

    src = Resilient(opener, "flaky://0", backoff=0.01)
    out = tmp_path / "l.jsonl"
    summary = run(CameraSettings.make(model=str(tiny_run["onnx"]), every=4, json_out=str(out)), sources=[src])
    kinds = [r["type"] for r in _lines(out)]
    assert "source_lost" in kinds and "source_back" in kinds and len(opens) >= 2
    s = summary["sources"][0]
    assert s["error"] is None and s["frames"] == 40 and s["windows"] == (40 - 4) // 4 + 1
    # a live source never waits for the model: every window is classified or counted as dropped
    assert summary["classifications"] + s["dropped_windows"] == s["windows"] and summary["classifications"] >= 1


def test_a_source_that_never_comes_back_is_one_line(tiny_run, capsys, monkeypatch):
    class Dead(Source):
        live, uri, fps = True, "dead://0", 30.0

        def read(self):
            raise OSError("gone")

    def dead_opener():
        raise SourceError("dead://0: cannot open it")

    src = Resilient(lambda: Dead(), "dead://0", max_retries=2, backoff=0.01)
    src.opener = dead_opener
    with pytest.raises(SourceError, match="reopening attempts failed"):
        run(CameraSettings.make(model=str(tiny_run["onnx"]), json_out=None), sources=[src])


def test_several_inputs_in_one_batched_inference(tiny_run, tmp_path):
    out = tmp_path / "m.jsonl"
    srcs = [SyntheticSource(f"synthetic://{i}", seed=i, size=32, max_frames=12) for i in range(2)]
    summary = run(CameraSettings.make(model=str(tiny_run["onnx"]), every=4, json_out=str(out)), sources=srcs)
    rows = [r for r in _lines(out) if r["type"] == "prediction"]
    assert {r["source"] for r in rows} == {"synthetic://0", "synthetic://1"}
    assert [s["windows"] for s in summary["sources"]] == [3, 3]


def test_realtime_30fps_capture_drops_no_frames(tiny_run, tmp_path):
    src = SyntheticSource("synthetic://", size=32, fps=30, realtime=True, max_frames=45)
    out = tmp_path / "rt.jsonl"
    t = time.perf_counter()
    summary = run(CameraSettings.make(model=str(tiny_run["onnx"]), every=3, json_out=str(out)), sources=[src])
    assert time.perf_counter() - t >= 45 / 30 * 0.9  # it really ran at 30 fps
    s = summary["sources"][0]
    assert s["frames"] == 45 and s["windows"] == (45 - 4) // 3 + 1
    assert summary["latency_ms"]["p50"] > 0 and "p99" in summary["latency_ms"]


@contextlib.contextmanager
def _live_page(model, tmp_path, source=None, **settings):
    """Run the app with --serve on a realtime synthetic source until the page shows a label (or
    the labels of its regions). Yields (url, status); the source is ended by the test (max 60 s of
    frames), never by a timer."""
    src = source or SyntheticSource("synthetic://", size=32, fps=30, realtime=True, max_frames=1800)
    result, lines = {}, tmp_path / "serve.jsonl"
    th = threading.Thread(target=lambda: result.update(run(CameraSettings.make(
        model=str(model), every=2, serve="127.0.0.1:0", json_out=str(lines), **settings), sources=[src])))
    th.start()
    try:
        url, status, deadline = None, {}, time.monotonic() + 45
        while time.monotonic() < deadline and not (url and ("label" in status or "regions" in status)):
            time.sleep(0.1)
            if url is None and lines.exists():
                url = next((r["url"] for r in _lines(lines) if r["type"] == "serving"), None)
            if url:  # the page's state is set after the prediction line is written: poll the page itself
                status = json.loads(urllib.request.urlopen(url + "status", timeout=5).read())
        assert url and url.startswith("http://127.0.0.1:"), "the app never announced its page"
        assert "label" in status or "regions" in status, "no classification reached the page within 45 s"
        yield url, status
    finally:
        src.max_frames = 0  # the source ends; the app drains and stops
        th.join(timeout=30)
    assert not th.is_alive() and result["classifications"] >= 1


def test_live_page_serves_stream_and_label(tiny_run, tmp_path):
    with _live_page(tiny_run["onnx"], tmp_path) as (url, status):
        page = urllib.request.urlopen(url, timeout=5).read().decode()
        assert "/stream.mjpg" in page
        assert status["label"] in load_classifier(tiny_run["onnx"]).classes + ["no action"]
        with urllib.request.urlopen(url + "stream.mjpg", timeout=5) as r:
            chunk = r.read(4096)
        assert b"Content-Type: image/jpeg" in chunk and b"\xff\xd8" in chunk


def test_teacher_mode_on_the_cpu_writes_flow_pictures(tiny_run, tmp_path):
    out = tmp_path / "t.jsonl"
    src = SyntheticSource("synthetic://", size=32, max_frames=12)
    summary = run(CameraSettings.make(model=str(tiny_run["onnx"]), every=4, json_out=str(out),
                                      teacher=str(tiny_run["teacher"]), flow_dir=str(tmp_path / "flow")), sources=[src])
    rows = _lines(out)
    assert any(r["type"] == "warning" and "CPU" in r["message"] for r in rows)
    preds = [r for r in rows if r["type"] == "prediction"]
    assert preds and all("agrees" in r["teacher"] for r in preds)
    assert len(list((tmp_path / "flow").glob("*.png"))) == len(preds)
    assert 0 <= summary["teacher_agreement"] <= 1


def test_missing_camera_is_one_line(capsys, tiny_run):
    assert main(["camera", "--input", "/dev/video99", "--model", str(tiny_run["onnx"])]) == 1
    err = capsys.readouterr().err
    assert "no such camera device" in err and err.count("\n") == 1
    # the old spelling still reaches the camera, with a warning that --device now means cpu/cuda
    assert main(["camera", "--device", "/dev/video99", "--model", str(tiny_run["onnx"])]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("warning: camera --device /dev/video99 is now --input")
    assert "no such camera device" in err[1]


def _chromium():
    import shutil
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not _chromium(), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_live_page_in_a_real_headless_browser(tiny_run, tmp_path):
    import subprocess

    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=4000"]
    shot = tmp_path / "page.png"
    with _live_page(tiny_run["onnx"], tmp_path) as (url, _):
        dom = subprocess.run([_chromium(), *flags, "--dump-dom", url], capture_output=True, text=True,
                             timeout=60).stdout
        subprocess.run([_chromium(), *flags, f"--screenshot={shot}", "--window-size=640,480", url],
                       capture_output=True, text=True, timeout=60)
    classes = load_classifier(tiny_run["onnx"]).classes
    # the page's script fetched /status and wrote the current label into the page
    assert any(c in dom for c in classes + ["no action"]), dom[:500]
    assert "waiting for the first window" not in dom
    assert "synthetic://" in dom and "onnxruntime" in dom  # the source and the model
    assert sum(dom.count(c) for c in classes) >= 3  # the smoothed top classes, as a table
    assert shot.exists() and shot.stat().st_size > 5000


MARKUP = ['<img src=x onerror="document.body.dataset.ran=1">', "<script>document.body.dataset.ran=2</script>",
          '"><svg onload="document.body.dataset.ran=3">', "<b>bold</b> & co"]


@pytest.mark.skipif(not _chromium(), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_class_names_and_sources_that_are_markup_show_as_text_and_run_nothing(tiny_run, tmp_path):
    """A model's class names, its file name and a source's name reach the page as text: in a real
    browser nothing of them runs, and each shows as written. The page forbids inline script."""
    import shutil
    import subprocess

    from conftest import lie

    from fts_edge.device.bundle import metadata_path

    model = tmp_path / '<img src=y onerror="document.body.dataset.ran=4">.onnx'
    shutil.copy(tiny_run["onnx"], model)
    shutil.copy(metadata_path(tiny_run["onnx"]), metadata_path(model))
    lie(model, lambda m: m.update(classes=MARKUP), "both")
    src = SyntheticSource('synthetic://<svg onload="document.body.dataset.ran=5">', size=32, fps=30, realtime=True,
                          max_frames=1800)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=4000"]
    with _live_page(model, tmp_path, source=src) as (url, _):
        with urllib.request.urlopen(url, timeout=5) as r:
            csp, page = r.headers["Content-Security-Policy"], r.read().decode()
        dom = subprocess.run([_chromium(), *flags, "--dump-dom", url], capture_output=True, text=True,
                             timeout=60).stdout
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert "<script>" not in page and "onload" not in page  # the page's own script is a file, not inline
    assert "data-ran" not in dom, dom[:2000]  # no handler, no script of a name ran
    shown = sum(escaped in dom for escaped in ("&lt;img src=x onerror=", "&lt;script&gt;document.body",
                                                "\"&gt;&lt;svg onload=", "&lt;b&gt;bold&lt;/b&gt; &amp; co"))
    assert shown >= 3, dom[:2000]  # the top classes, as the model names them, as text
    assert "&lt;svg onload=&quot;document.body.dataset.ran=5" in dom or \
        '&lt;svg onload="document.body.dataset.ran=5' in dom  # the source's name
    assert "document.body.dataset.ran=4" in dom  # the model's file name, as text


def test_the_page_says_when_the_source_has_ended(tiny_run, tmp_path):
    src = SyntheticSource("synthetic://", size=32, fps=30, max_frames=40)
    lines = tmp_path / "serve.jsonl"
    th = threading.Thread(target=lambda: run(CameraSettings.make(
        model=str(tiny_run["onnx"]), every=2, serve="127.0.0.1:0", json_out=str(lines), linger=5), sources=[src]))
    th.start()
    try:
        deadline, status = time.monotonic() + 45, {}
        while time.monotonic() < deadline and not status.get("ended"):
            time.sleep(0.2)
            url = next((r["url"] for r in _lines(lines) if r["type"] == "serving"), None) if lines.exists() else None
            if url:
                status = json.loads(urllib.request.urlopen(url + "status", timeout=5).read())
        assert status.get("ended") == "end of input" and status.get("top") and "events" in status
    finally:
        th.join(timeout=40)


def test_annotated_video_output(tiny_run, shared_data, tmp_path):
    """--output on a file: every frame, at the file's own rate, each with the latest window's label."""
    import cv2

    out = tmp_path / "annotated.mp4"
    assert main(["camera", "--input", str(shared_data / "Megamind.avi"), "--model", str(tiny_run["onnx"]),
                 "--every", "5", "--output", str(out), "--json-out", str(tmp_path / "l.jsonl")]) == 0
    frames = read_frames(out)
    assert len(frames) == 270 and frames.shape[1:3] == (528, 720)  # Megamind.avi: 270 frames of 720x528
    cap = cv2.VideoCapture(str(out))
    assert abs(cap.get(cv2.CAP_PROP_FPS) - 23.976) < 0.05
    cap.release()
    assert frames[0][:10].mean() < 60 and frames[-1][:10].mean() < 60  # the dark label band on every frame


def test_every_row_the_camera_writes_validates_against_the_documented_schema(tiny_run, tmp_path):
    """docs/camera-jsonl.schema.json: start, prediction, event and summary rows of a real run, and
    the stop rows of a stopped one."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).resolve().parents[1] / "docs" / "camera-jsonl.schema.json").read_text())
    out = tmp_path / "rows.jsonl"
    assert main(["camera", "--input", "synthetic://?frames=90", "--model", str(tiny_run["onnx"]), "--every", "2",
                 "--on", "0.3", "--off", "0.2", "--teacher", str(tiny_run["teacher"]), "--json-out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    for r in rows:
        jsonschema.validate(r, schema)
    kinds = {r["type"] for r in rows}
    assert {"start", "prediction", "summary"} <= kinds
    labels = {r["label"] for r in rows if r["type"] == "prediction"}
    assert labels, "predictions carry the smoothed label or no action"
    preds = [r for r in rows if r["type"] == "prediction"]
    assert all(r["source_time"] is not None for r in preds)
    bad = dict(preds[0], phase="start")
    bad.pop("label")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_below_the_on_threshold_the_label_is_no_action(tiny_run, tmp_path):
    out = tmp_path / "rows.jsonl"
    assert main(["camera", "--input", "synthetic://?frames=40", "--model", str(tiny_run["onnx"]), "--on", "1.0",
                 "--off", "0.5", "--json-out", str(out)]) == 0
    preds = [json.loads(line) for line in out.read_text().splitlines() if '"prediction"' in line]
    assert preds and all(p["label"] == "no action" for p in preds)


def test_the_camera_app_script_classifies_a_stream_into_json_lines_and_a_video(tiny_run, tmp_path):
    """apps/camera.py, run as a user runs it: positional input and output, JSON lines on stdout,
    every frame in the annotated video; a missing input is one line and exit 1."""
    import subprocess
    import sys

    import cv2

    app = Path(__file__).resolve().parents[1] / "apps" / "camera.py"
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (64, 48))
    for i, f in enumerate(SyntheticSource("synthetic://", seed=1, size=64, max_frames=30).frames()):
        writer.write(cv2.resize(f, (64, 48)))
    writer.release()
    video = tmp_path / "annotated.avi"
    r = subprocess.run([sys.executable, str(app), str(clip), str(video),
                        "--model", str(tiny_run["onnx"]), "--every", "4"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows[0]["type"] == "start" and rows[-1]["type"] == "summary"
    preds = [row for row in rows if row["type"] == "prediction"]
    assert len(preds) == rows[-1]["classifications"] == (30 - 4) // 4 + 1  # files (and synthetic://) drop nothing
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    cap.release()
    r = subprocess.run([sys.executable, str(app), str(tmp_path / "nowhere.mp4"), "--model", str(tiny_run["onnx"])],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0 and "no such file" in r.stderr
