"""Regions and people: each classified on its own (its own window or streaming state, smoothing and
events), all of a step in one batch; person detection (HOG, ONNX detectors' layouts) and ByteTrack."""
import json
from pathlib import Path

import numpy as np
import pytest

from fts_edge.cli import main
from fts_edge.core.errors import UsageError
from fts_edge.data.regions import (
    CONTEXT,
    Region,
    cut,
    load_regions_file,
    parse_region,
    person_crop,
    regions_per_input,
    square_around,
)
from fts_edge.data.sources import Source
from fts_edge.data.video import read_frames
from fts_edge.device.runtime import load_classifier
from fts_edge.live.camera import CameraSettings, LiveApp, Outputs, run

SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "camera-jsonl.schema.json"


class Frames(Source):
    """Real frames (decoded from a video) served as a file source: read in the loop, nothing dropped."""

    def __init__(self, frames, uri="frames://", fps=10.0):
        self.frames_, self.i, self.uri, self.fps = list(frames), 0, uri, fps

    def read(self):
        if self.i >= len(self.frames_):
            return None
        self.i += 1
        return self.frames_[self.i - 1]


def _validate(rows):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    for r in rows:
        jsonschema.validate(r, schema)


def _rows(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


# -- regions: parsing, the crop rule -------------------------------------------------------------
def test_regions_parse_in_pixels_or_fractions_and_bad_ones_are_one_line():
    i, r = parse_region("door=0.5,0,0.5,1")
    assert i is None and r.fractional and r.pixels(640, 480) == (320, 0, 320, 480)
    i, r = parse_region("1:bench=10,20,100,50")
    assert i == 1 and not r.fractional and r.pixels(640, 480) == (10, 20, 100, 50)
    assert parse_region("cam:door=1,2,3,4")[1].name == "cam:door"  # only a number before the colon is an input
    for bad, says in [("door", "NAME=x,y,w,h"), ("door=1,2,3", "four numbers"), ("1:=1,2,3,4", "needs a name"),
                      ("=1,2,3,4", "needs a name"), ("door=0,0,0,5", "above 0")]:
        with pytest.raises(UsageError, match=says):
            parse_region(bad)
    with pytest.raises(UsageError, match="not inside the 640x480 frame"):
        Region("wide", (600, 0, 100, 10)).pixels(640, 480)
    per = regions_per_input([parse_region("a=0,0,.5,.5"), parse_region("1:b=0,0,10,10")], 2)
    assert [[r.name for r in rs] for rs in per] == [["a"], ["a", "b"]]
    with pytest.raises(UsageError, match="only 2 input"):
        regions_per_input([parse_region("2:b=0,0,10,10")], 2)
    with pytest.raises(UsageError, match="named twice"):
        regions_per_input([parse_region("a=0,0,10,10"), parse_region("0:a=5,5,10,10")], 1)


def test_a_regions_file_in_json_or_yaml(tmp_path):
    js = tmp_path / "r.json"
    js.write_text(json.dumps({"regions": {"door": [0, 0, 0.5, 1]}, "inputs": {"1": {"bench": [10, 10, 50, 50]}}}))
    ym = tmp_path / "r.yaml"
    ym.write_text("regions:\n  door: [0, 0, 0.5, 1]\ninputs:\n  '1':\n    bench: [10, 10, 50, 50]\n")
    for f in (js, ym):
        got = load_regions_file(str(f))
        assert [(i, r.name, r.box) for i, r in got] == [(None, "door", (0, 0, 0.5, 1)), (1, "bench", (10, 10, 50, 50))]
    bad = tmp_path / "bad.json"
    bad.write_text('{"regions": {"door": [0, 0, 1]}}')
    with pytest.raises(UsageError, match="four numbers"):
        load_regions_file(str(bad))
    bad.write_text('{"zones": {}}')
    with pytest.raises(UsageError, match="expected"):
        load_regions_file(str(bad))
    with pytest.raises(UsageError, match="no such file"):
        load_regions_file(str(tmp_path / "none.json"))


def test_a_person_crop_is_a_square_around_the_box_black_outside_the_frame():
    frame = np.arange(100 * 200 * 3, dtype=np.uint32).reshape(100, 200, 3).astype(np.uint8)
    assert square_around((50, 20, 20, 40)) == (60 - 25, 40 - 25, 50, 50)  # 1.25 x the longer side, centred
    crop = person_crop(frame, (50, 20, 20, 40))
    assert crop.shape == (50, 50, 3) and np.array_equal(crop, frame[15:65, 35:85])
    edge = person_crop(frame, (0, 0, 20, 40))  # at the corner: the person stays centred, the rest is black
    side = int(round(40 * CONTEXT))
    assert edge.shape == (side, side, 3)
    x, y = int(round(10 - side / 2)), int(round(20 - side / 2))
    assert np.array_equal(edge[-y:, -x:], frame[:side + y, :side + x]) and edge[:-y].max() == 0
    assert np.array_equal(cut(frame, (5, 6, 7, 8)), frame[6:14, 5:12])


# -- regions on the camera ---------------------------------------------------------------------
def _batches(clf):
    sizes = []
    classify = clf.classify

    def counting(clips):
        sizes.append(len(clips))
        return classify(clips)
    clf.classify = counting
    return sizes


def test_each_region_is_classified_as_its_own_video_would_be_all_in_one_batch(tiny_run, shared_data, tmp_path):
    frames = list(read_frames(shared_data / "vtest.avi", max_frames=24))
    h, w = frames[0].shape[:2]
    regions = {"left": (0, 0, w // 2, h), "door": (500, 100, 120, 200)}
    clf = load_classifier(tiny_run["onnx"])
    sizes = _batches(clf)
    lines = tmp_path / "regions.jsonl"
    rois = ("left=0,0,0.5,1", "door=500,100,120,200")
    summary = run(CameraSettings.make(every=3, json_out=str(lines), regions=rois), clf=clf, sources=[Frames(frames)])
    rows = _rows(lines)
    _validate(rows)
    preds = [r for r in rows if r["type"] == "prediction"]
    assert {r["region"] for r in preds} == set(regions) and all(r["box"] == list(regions[r["region"]]) for r in preds)
    assert sizes and set(sizes) == {2}  # every step: both regions, one inference
    assert summary["classifications"] == len(preds) == 2 * len(sizes)
    for name, (x, y, bw, bh) in regions.items():  # each region: the same numbers as its cut-out video alone
        alone = tmp_path / f"{name}.jsonl"
        run(CameraSettings.make(every=3, json_out=str(alone)), clf=load_classifier(tiny_run["onnx"]),
            sources=[Frames([f[y:y + bh, x:x + bw] for f in frames])])
        ref = [r for r in _rows(alone) if r["type"] == "prediction"]
        mine = [r for r in preds if r["region"] == name]
        assert [r["frame"] for r in mine] == [r["frame"] for r in ref]
        for a, b in zip(mine, ref):
            assert [t["label"] for t in a["smoothed"]] == [t["label"] for t in b["smoothed"]]
            assert np.allclose([t["score"] for t in a["top"]], [t["score"] for t in b["top"]], atol=1e-5)


def test_regions_per_input_over_two_inputs_share_batches(tiny_run, shared_data, tmp_path):
    frames = list(read_frames(shared_data / "vtest.avi", max_frames=16))
    clf = load_classifier(tiny_run["onnx"])
    sizes = _batches(clf)
    lines = tmp_path / "two.jsonl"
    run(CameraSettings.make(every=4, json_out=str(lines), regions=("all=0,0,1,1", "0:door=500,100,120,200",
                                                                   "1:bench=0,300,300,200")),
        clf=clf, sources=[Frames(frames, "cam0"), Frames(frames[::-1], "cam1")])
    preds = [r for r in _rows(lines) if r["type"] == "prediction"]
    assert {(r["source"], r["region"]) for r in preds} == {("cam0", "all"), ("cam0", "door"), ("cam1", "all"),
                                                          ("cam1", "bench")}
    assert set(sizes) == {4}  # two regions of each camera, one batch a step


def test_a_streaming_student_keeps_a_state_per_region(tmp_path, shared_data):
    from test_streaming import _streaming_onnx

    _, onnx_path = _streaming_onnx(tmp_path)
    frames = list(read_frames(shared_data / "vtest.avi", max_frames=20))
    lines = tmp_path / "s.jsonl"
    run(CameraSettings.make(model=str(onnx_path), json_out=str(lines), regions=("a=0,0,0.5,1", "b=0.5,0,0.5,1")),
        sources=[Frames(frames)])
    preds = [r for r in _rows(lines) if r["type"] == "prediction"]
    h, w = frames[0].shape[:2]
    alone = tmp_path / "b.jsonl"
    run(CameraSettings.make(model=str(onnx_path), json_out=str(alone)),
        sources=[Frames([f[:, w // 2:] for f in frames])])
    ref = [r for r in _rows(alone) if r["type"] == "prediction"]
    mine = [r for r in preds if r["region"] == "b"]
    assert ref and [r["frame"] for r in mine] == [r["frame"] for r in ref]
    for a, b in zip(mine, ref):  # stepped interleaved with region a, the same as alone: a state each
        assert np.allclose([t["score"] for t in a["top"]], [t["score"] for t in b["top"]], atol=1e-5)


def test_a_region_outside_the_frame_is_one_line(tiny_run, shared_data, capsys):
    rc = main(["camera", "--input", str(shared_data / "vtest.avi"), "--model", str(tiny_run["onnx"]),
               "--roi", "door=700,0,100,100", "--json-out", "/dev/null"])
    err = capsys.readouterr().err
    assert rc != 0 and "region 'door' (700,0,100,100) is not inside the 768x576 frame" in err
    assert "Traceback" not in err


def test_the_annotated_video_draws_each_region_with_its_label(tiny_run, shared_data, tmp_path):
    out = tmp_path / "regions.avi"
    assert main(["camera", "--input", str(shared_data / "vtest.avi"), "--model", str(tiny_run["onnx"]),
                 "--roi", "door=500,100,120,200", "--every", "4", "--max-windows", "6", "--output", str(out),
                 "--json-out", str(tmp_path / "l.jsonl")]) == 0
    frames = read_frames(out)
    plain = read_frames(shared_data / "vtest.avi", max_frames=len(frames))
    last = frames[-1].astype(int)
    # the box's left edge is a line of its colour (green: an action; grey: no action) down the frame's
    # pedestrians and floor; inside the box the frame is as it was
    edge = last[150:280, 500:502].reshape(-1, 3)
    colours = {"green": (0, 200, 0), "grey": (160, 160, 160)}
    near = {k: np.median(np.abs(edge - np.array(c)).max(1)) for k, c in colours.items()}
    assert min(near.values()) < 30, near
    assert np.abs(plain[-1][150:280, 500:502].reshape(-1, 3).astype(int) - edge).mean() > 15  # not the scene's own
    inside = np.abs(last[200:280, 530:600] - plain[-1][200:280, 530:600].astype(int)).mean()
    assert inside < 12


# -- people ---------------------------------------------------------------------------------------
def _onnx_detector(path, out: np.ndarray, in_shape=(1, 3, 64, 64)):
    """A real ONNX model with a detector's input and a fixed output of a detector head's layout."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, list(in_shape))
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(out.shape))
    const = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(out.astype(np.float32)))
    zero = helper.make_node("ReduceSum", ["images"], ["s"], keepdims=0)
    mul = helper.make_node("Mul", ["s", "z"], ["sz"])
    add = helper.make_node("Add", ["c", "sz"], ["output0"])
    z = numpy_helper.from_array(np.zeros((), np.float32), "z")
    graph = helper.make_graph([const, zero, mul, add], "det", [x], [y], [z])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


def test_onnx_person_detectors_of_each_accepted_layout_map_boxes_back_to_the_frame(tmp_path):
    from fts_edge.device.people import OnnxPeople

    frame = np.zeros((96, 128, 3), np.uint8)  # letterboxed into 64x64: scale 0.5, 8 rows of padding on top
    want = np.array([[48, 24, 80, 72]], np.float32)  # the box in the frame
    # the same box in the detector's input: centre (32, 32), 16 x 24
    v8 = np.zeros((1, 4 + 3, 20), np.float32)  # anchors outnumber channels, as in every YOLO head
    v8[0, :4, 2], v8[0, 4, 2], v8[0, 5, 3] = (32, 32, 16, 24), 0.9, 0.95  # anchor 3: another class
    v5 = np.zeros((1, 20, 5 + 2), np.float32)
    v5[0, 1, :7] = (32, 32, 16, 24, 0.95, 0.9, 0.1)
    v5[0, 2, :7] = (10, 10, 4, 4, 0.2, 0.9, 0.0)  # objectness x person 0.18: below the threshold
    nms = np.array([[[24, 20, 40, 44, 0.8, 0], [0, 0, 10, 10, 0.9, 2]]], np.float32)
    for name, out in [("v8", v8), ("v5", v5), ("nms", nms)]:
        det = OnnxPeople(_onnx_detector(tmp_path / f"{name}.onnx", out))
        got = det(frame)
        assert len(got) == 1 and np.allclose(got.xyxy, want, atol=0.5), (name, got)
    for out, says in [(np.zeros((1, 3, 2)), "accepted"), (np.zeros((2, 5, 9)), "accepted")]:
        with pytest.raises(UsageError, match=says):
            OnnxPeople(_onnx_detector(tmp_path / "bad.onnx", out))
    with pytest.raises(UsageError, match=r"one input \(1, 3, H, W\)"):
        OnnxPeople(_onnx_detector(tmp_path / "gray.onnx", v8, in_shape=(1, 1, 64, 64)))


def test_a_detector_that_is_not_onnx_is_one_line(tiny_run, tmp_path, capsys):
    pytest.importorskip("supervision")
    junk = tmp_path / "det.onnx"
    junk.write_text("not a model")
    rc = main(["camera", "--input", "synthetic://?frames=10", "--model", str(tiny_run["onnx"]), "--track", "person",
               "--detector", str(junk)])
    err = capsys.readouterr().err
    assert rc != 0 and "--detector" in err and "Traceback" not in err


def test_hog_tracks_form_and_keep_their_ids_on_real_pedestrians(shared_data):
    pytest.importorskip("supervision")
    from fts_edge.device.people import HogPeople, PeopleTracker

    frames = read_frames(shared_data / "vtest.avi", max_frames=30)
    tracker = PeopleTracker(HogPeople(), fps=10.0)
    seen, began, ended = {}, [], []
    for i, f in enumerate(frames):
        tracks, events = tracker(f)
        began += [t for p, t, _ in events if p == "begin"]
        ended += [t for p, t, _ in events if p == "end"]
        for t in tracks:
            seen.setdefault(t, []).append(i)
    long = [t for t, fr in seen.items() if len(fr) >= 20]
    assert len(long) >= 2, seen  # people walking through 3 s of footage keep one id each
    assert len(began) == len(set(began))  # an id begins once: a missed detection does not end a track
    assert all(fr == list(range(fr[0], fr[-1] + 1)) for fr in seen.values())  # no gaps while a track lives


class Scripted:
    """Stands in for a person detector: the boxes of a script, frame by frame (it proves the track
    lifecycle of the app, not detection)."""

    def __init__(self, script):
        self.script, self.i = script, 0

    def __call__(self, frame):
        from fts_edge.device.people import Detections

        boxes = self.script(self.i)
        self.i += 1
        return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9, np.float32))


def test_tracks_begin_and_end_as_rows_and_take_their_state_with_them(tmp_path, shared_data):
    pytest.importorskip("supervision")
    from test_streaming import _streaming_onnx

    from fts_edge.device.people import PeopleTracker
    from fts_edge.live.stream import LIVE, Streams

    _, onnx_path = _streaming_onnx(tmp_path)
    clf = load_classifier(onnx_path)
    frames = list(read_frames(shared_data / "vtest.avi", max_frames=60))
    a = [100, 100, 180, 300]
    b = [400, 150, 470, 330]
    script = lambda i: ([a] if i < 40 else []) + ([b] if i >= 10 else [])  # noqa: E731
    rows = []
    streams = Streams([Frames(frames)], clf, 1, people=lambda fps: PeopleTracker(Scripted(script), fps, hold_s=0.5))
    app = LiveApp(clf, streams.uris, LIVE, streams.every, rows.append, Outputs(None, None, False, rows.append))
    with streams:
        while streams.streaming:
            app.classify(streams.take(), streams.dropped)
            app.tracks(streams.track_events())
    _validate([{"schema": 1, **r} for r in rows])  # JsonLines adds the schema when it writes a row
    tracks = [(r["phase"], r["track_id"], r["frame"]) for r in rows if r["type"] == "track"]
    ta, tb = tracks[0][1], tracks[1][1]
    # ByteTrack confirms a track at its second detection (at once only on the first frame); a, not
    # detected from frame 40, keeps its box for 0.5 s (5 frames) and ends at the 6th
    assert tracks == [("begin", ta, 0), ("begin", tb, 11), ("end", ta, 45)]
    preds = [r for r in rows if r["type"] == "prediction"]
    assert {r["track_id"] for r in preds} == {ta, tb}
    assert max(r["frame"] for r in preds if r["track_id"] == ta) <= 44  # none after its track ended
    assert (0, ta) not in app.smoothers and (0, ta) not in clf.streams  # its smoothing and streaming state dropped
    assert (0, tb) in clf.streams
    assert streams.states[0].tracks == 2


def test_a_person_crop_model_needs_track_and_a_whole_frame_model_is_warned(tiny_run, tmp_path, capsys):
    import shutil

    from conftest import lie

    from fts_edge.device.bundle import metadata_path

    model = tmp_path / "person.onnx"
    shutil.copy(tiny_run["onnx"], model)
    shutil.copy(metadata_path(tiny_run["onnx"]), metadata_path(model))
    lie(model, lambda m: m["clip_spec"].update(crop="person"), "both")
    assert load_classifier(model).spec.crop == "person"
    rc = main(["camera", "--input", "synthetic://?frames=10", "--model", str(model)])
    err = capsys.readouterr().err
    assert rc != 0 and "run it with --track person" in err and "Traceback" not in err
    pytest.importorskip("supervision")
    lines = tmp_path / "w.jsonl"
    assert main(["camera", "--input", "synthetic://?frames=12", "--model", str(tiny_run["onnx"]), "--track",
                 "person", "--json-out", str(lines)]) == 0
    assert any(r["type"] == "warning" and "trained on whole frames" in r["message"] for r in _rows(lines))


def test_regions_and_track_together_or_with_the_teacher_are_refused():
    with pytest.raises(UsageError, match="give one"):
        CameraSettings.make(regions=("a=0,0,1,1",), track="person")
    with pytest.raises(UsageError, match="whole frames"):
        CameraSettings.make(regions=("a=0,0,1,1",), teacher="t.pt")


def test_the_live_page_in_a_real_browser_lists_each_region_with_its_label(tiny_run, tmp_path):
    """Regions' names (markup among them) reach the page as text, each with its label and box."""
    import subprocess

    from test_camera import _chromium, _live_page

    if not _chromium():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=4000"]
    shot = tmp_path / "page.png"
    rois = ("door=0,0,0.5,0.5", '<img src=x onerror="document.body.dataset.ran=1">=0.5,0.5,0.5,0.5')
    with _live_page(tiny_run["onnx"], tmp_path, regions=rois) as (url, status):
        dom = subprocess.run([_chromium(), *flags, "--dump-dom", url], capture_output=True, text=True,
                             timeout=60).stdout
        subprocess.run([_chromium(), *flags, f"--screenshot={shot}", "--window-size=800,600", url],
                       capture_output=True, text=True, timeout=60)
    assert [r["name"] for r in status["regions"]] == ["door", rois[1].split("=0.5")[0]]
    classes = load_classifier(tiny_run["onnx"]).classes
    assert "2 regions or people" in dom and "door" in dom and "at 0,0,16,16" in dom  # a 32x32 source
    assert "&lt;img src=x onerror=" in dom and "data-ran" not in dom  # a region's name is text, never markup
    assert any(c in dom for c in classes + ["no action"])
    assert shot.exists() and shot.stat().st_size > 5000
