"""Scenes of several objects (each with its own class and boxes), training on person crops, and
scoring per object."""
import json

import numpy as np
import pytest

from fts_edge.data.synthetic import MOTION_CLASSES, render_scene, write_scene_dataset


def test_each_object_of_a_scene_moves_as_its_class_and_its_boxes_follow_it():
    left, right, down = (MOTION_CLASSES.index(c) for c in ("translate_left", "translate_right", "translate_down"))
    frames, boxes = render_scene([right, left, down], seed=3, index=1, frames=12, height=64, cell=64)
    assert frames.shape == (12, 64, 192, 3) and boxes.shape == (3, 12, 4)
    cx = boxes[:, :, 0] + boxes[:, :, 2] / 2
    cy = boxes[:, :, 1] + boxes[:, :, 3] / 2
    assert cx[0, -1] - cx[0, 0] > 8 and cx[1, -1] - cx[1, 0] < -8  # right moves right, left moves left
    assert cy[2, -1] - cy[2, 0] > 8 and abs(cx[2, -1] - cx[2, 0]) < 4  # down moves down
    assert all(k * 64 - 16 < cx[k, 6] < (k + 1) * 64 + 16 for k in range(3))  # each in its own column
    # the box is the object's: the frame differs from the plain background inside it, frame to frame
    still, _ = render_scene([right, left, down], seed=3, index=1, frames=12, height=64, cell=64, background=0.0)
    x, y, w, h = boxes[0, 5]
    assert still[5, y:y + h, x:x + w].std() > 5  # the object's texture inside its box on a flat background
    with pytest.raises(ValueError, match="1 to 3 objects"):
        render_scene([0, 1, 2, 3], 0)


def test_train_crop_person_trains_on_each_objects_crop_and_the_camera_asks_for_track(tmp_path, capsys):
    from fts_edge.bench.regions import bench_scenes
    from fts_edge.cli import main
    from fts_edge.pipeline import Recipe
    from fts_edge.trainrun import TrainSettings

    root = tmp_path / "scenes"
    counts = write_scene_dataset(root, scenes=8, objects=2, num_classes=2, frames=10, height=32, cell=32)
    assert counts == {"train": 6, "val": 2}
    listing = json.loads((root / "scenes.json").read_text())
    assert len(listing["videos"]) == 8 and all(len(v["labels"]) == 2 for v in listing["videos"])
    recipe = Recipe(frames=4, size=24, resize=28, stride=1, epochs=1, teacher_epochs=1, batch_size=4, width=0.125,
                    crop="person")
    cfg = tmp_path / "settings.json"
    cfg.write_text(json.dumps(TrainSettings(root=str(root), recipe=recipe).to_dict()))
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "[1/9] crops" in said
    # 10-frame scenes, 4-frame clips: tubes at frames 0, 4 and 6 of each object
    assert "36 training and 12 validation tubes (28x28, 4 frames) from the boxes beside each scene" in said
    assert "--track person --model" in said  # the next step names the flag the model needs
    crops = sorted((out / "crops").rglob("*.avi"))
    assert len(crops) == 48 and {p.parent.name for p in crops} == set(listing["classes"])
    from fts_edge.data.video import read_frames
    assert read_frames(crops[0]).shape == (4, 28, 28, 3)
    meta = json.loads((out / "engines" / "student.onnx.json").read_text())
    assert meta["clip_spec"]["crop"] == "person"
    assert main(["camera", "--input", str(root / listing["videos"][-1]["path"]), "--model",
                 str(out / "engines" / "student.onnx")]) == 2  # a usage error
    assert "run it with --track person" in capsys.readouterr().err
    res = bench_scenes(str(root), str(out / "engines" / "student.onnx"))
    assert res["objects"] == 4 and 0.0 <= res["top1"]["crop model on crops"] <= 100.0
    assert main(["train", "--config", str(out / "settings.json"), "--out", str(out)]) == 0
    assert "[1/9] crops: already done (resumed)" in capsys.readouterr().out


def test_fragmentations_count_a_new_id_where_a_track_just_ended():
    from fts_edge.bench.regions import fragmentations, grid

    rows = [{"phase": "begin", "frame": 0, "box": [10, 10, 20, 40]},
            {"phase": "end", "frame": 20, "box": [30, 10, 20, 40]},
            {"phase": "begin", "frame": 24, "box": [35, 12, 20, 40]},  # the same person, a new id: counted
            {"phase": "begin", "frame": 26, "box": [300, 10, 20, 40]},  # someone else, far away
            {"phase": "begin", "frame": 60, "box": [30, 10, 20, 40]}]  # long after: a new person
    assert fragmentations(rows, fps=10) == 1
    assert grid(4) == ["r00=0.0000,0.0000,0.5000,0.5000", "r01=0.5000,0.0000,0.5000,0.5000",
                       "r10=0.0000,0.5000,0.5000,0.5000", "r11=0.5000,0.5000,0.5000,0.5000"]
    with pytest.raises(ValueError):
        grid(3)
    assert np.isclose(sum(float(g.split(",")[2]) * float(g.split(",")[3]) for g in grid(16)), 1.0)


def test_a_tube_keeps_the_motion_a_box_by_box_crop_would_cancel():
    from fts_edge.data.regions import cut, person_crop, tube

    frames = np.zeros((6, 80, 120, 3), np.uint8)
    boxes = [(10 + 8 * t, 30, 16, 16) for t in range(6)]  # a bright square moving right 8 px a frame
    for f, (x, y, w, h) in zip(frames, boxes):
        f[y:y + h, x:x + w] = 255
    def centre_x(img):
        return np.nonzero(img[..., 0].max(0) > 128)[0].mean()

    follow = [centre_x(person_crop(f, b)) for f, b in zip(frames, boxes)]
    square = tube(boxes)
    kept = [centre_x(cut(f, square)) for f in frames]
    assert np.ptp(follow) < 1  # box by box: the square stands still in the crop
    assert np.allclose(np.diff(kept), 8)  # one square for the clip: it moves 8 px a frame, as it did
    assert square[2] == square[3] == int(round(56 * 1.25))  # around the union (56 x 16): 1.25 x its longer side


def test_a_tracked_persons_window_is_the_tube_of_the_raw_frames(shared_data):
    from collections import deque

    from fts_edge.data.clipspec import ClipSpec
    from fts_edge.data.regions import cut, tube
    from fts_edge.data.transforms import preprocess_frame
    from fts_edge.data.video import read_frames
    from fts_edge.live.stream import ClipBuffer, Targets

    spec = ClipSpec(frames=3, size=24, resize=28, stride=2)  # span 5
    frames = list(read_frames(shared_data / "vtest.avi", max_frames=8))
    boxes = [(100 + 5 * i, 120, 40, 90) for i in range(8)]

    class Follow:  # stands in for the detector and tracker: one person at the scripted boxes
        def __init__(self):
            self.i = 0

        def __call__(self, frame):
            self.i += 1
            return {7: boxes[self.i - 1]}, ([("begin", 7, boxes[0])] if self.i == 1 else [])

    t = Targets(lambda: ClipBuffer(spec), people=Follow())
    for i, f in enumerate(frames):
        [(region, track, box, buf)] = t.push(f)[0]
    assert track == 7 and buf.full
    square = tube(boxes[3:8])
    want = np.stack([preprocess_frame(cut(frames[i], square), spec) for i in (3, 5, 7)]).transpose(1, 0, 2, 3)
    assert np.array_equal(buf.window(), want)
    assert isinstance(t.raw, deque) and len(t.raw) == 5  # the raw frames kept: one window's span


def test_data_crops_then_the_teacher_script_with_crop_person(tmp_path, capsys):
    import subprocess
    import sys
    from pathlib import Path

    from fts_edge.cli import main
    from fts_edge.nets.checkpoint import load_checkpoint

    root = tmp_path / "scenes"
    write_scene_dataset(root, scenes=8, objects=2, num_classes=2, frames=10, height=32, cell=32)
    out = tmp_path / "tubes"
    assert main(["data", "crops", str(root), str(out), "--frames", "4", "--stride", "1", "--size", "24",
                 "--resize", "28"]) == 0
    said = capsys.readouterr().out
    assert "36 training and 12 validation tubes of 4 frames (28x28)" in said and "--crop person" in said
    assert json.loads((out / "crops.json").read_text())["span"] == 4
    script = Path(__file__).resolve().parents[1] / "train" / "train_teacher.py"
    common = ["--dataset", "folder", "--frames", "4", "--stride", "1", "--size", "24", "--resize", "28", "--width",
              "0.125", "--epochs", "1", "--batch-size", "4", "--crop", "person"]
    bad = subprocess.run([sys.executable, str(script), *common, "--root", str(root), "--out", str(tmp_path / "x")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "not a folder of person tubes" in bad.stderr and "Traceback" not in bad.stderr
    ok = subprocess.run([sys.executable, str(script), *common, "--root", str(out), "--out", str(tmp_path / "t")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert load_checkpoint(tmp_path / "t" / "last.pt")["clip_spec"]["crop"] == "person"


def test_people_found_by_hog_and_bytetrack_are_cut_into_tubes(shared_data, tmp_path):
    pytest.importorskip("supervision")
    from fts_edge.data.clipspec import ClipSpec
    from fts_edge.data.video import read_frames, write_video
    from fts_edge.train.crops import make_crops

    frames = read_frames(shared_data / "vtest.avi", max_frames=24)
    root = tmp_path / "people"
    for split, part in (("train", slice(0, 12)), ("val", slice(12, 24))):
        write_video(root / split / "walk" / f"{split}.avi", frames[part])
        write_video(root / split / "stand" / f"{split}.avi", np.zeros_like(frames[part]))  # nobody in it
    spec = ClipSpec(frames=3, size=24, resize=32, stride=2)  # span 5
    rep = make_crops(str(root), tmp_path / "tubes", spec)
    assert rep["from"] == "hog and ByteTrack" and len(rep["untracked"]) == 2  # the empty videos, listed
    tubes = sorted((tmp_path / "tubes").rglob("*.avi"))
    assert rep["train"] == rep["val"] == 3 and len(tubes) == 6  # 12 frames: tubes at 0, 5 and 7
    assert {t.parent.name for t in tubes} == {"walk"} and read_frames(tubes[0]).shape == (5, 32, 32, 3)
    assert json.loads((tmp_path / "tubes" / "crops.json").read_text())["span"] == 5
