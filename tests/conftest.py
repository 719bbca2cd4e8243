"""Shared fixtures: tiny datasets in the official HMDB51 and UCF101 layouts, built from real
(rendered) videos, each with a corrupt file among them."""
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("FTS_EDGE_PROGRESS", "0")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data():
    if not (SHARED / "vtest.avi").exists():
        pytest.skip(f"shared sample data not found at {SHARED}")
    return SHARED


def _tiny_video(path, label, index, frames=10, size=40):
    from fts_edge.data.synthetic import render_clip
    from fts_edge.data.video import write_video

    write_video(path, render_clip(label % 10, seed=7, index=index, frames=frames, height=size, width=size + 8))


@pytest.fixture(scope="session")
def hmdb_fixture(tmp_path_factory):
    """HMDB51 layout: root/<class>/<video>.avi and splits/<class>_test_split{1,2,3}.txt.
    3 classes x 5 videos; split 1 marks 3 train (1), 1 test (2), 1 unused (0) per class.
    One test video of 'jump' is random bytes."""
    base = tmp_path_factory.mktemp("hmdb")
    root, splits = base / "videos", base / "splits"
    splits.mkdir()
    classes = ["brush_hair", "jump", "wave"]
    for ci, c in enumerate(classes):
        names = [f"{c}_video_{i}_f_nm_np1_fr_med_{i}.avi" for i in range(5)]
        for i, n in enumerate(names):
            _tiny_video(root / c / n, ci, i)
        for k in (1, 2, 3):
            marks = np.roll([1, 1, 1, 2, 0], k - 1)
            (splits / f"{c}_test_split{k}.txt").write_text("".join(f"{n} {m} \n" for n, m in zip(names, marks)))
    bad = root / "jump" / "jump_video_3_f_nm_np1_fr_med_3.avi"  # split 1: a test video
    bad.write_bytes(np.random.default_rng(0).bytes(5000))
    return {"root": root, "splits": splits, "classes": classes, "bad": bad}


@pytest.fixture(scope="session")
def ucf_fixture(tmp_path_factory):
    """UCF101 layout: root/<Class>/v_<Class>_gXX_cYY.avi, splits/classInd.txt, trainlist0k.txt,
    testlist0k.txt. 2 classes; groups 1-2 train, group 3 test; one train video is truncated."""
    base = tmp_path_factory.mktemp("ucf")
    root, splits = base / "UCF-101", base / "ucfTrainTestlist"
    splits.mkdir(parents=True)
    classes = ["ApplyEyeMakeup", "HandstandPushups"]
    (splits / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    train, test = [], []
    for ci, c in enumerate(classes):
        for g in (1, 2, 3):
            for clip in (1, 2):
                # The official lists spell one class "HandStandPushups" inside file names.
                stem = "HandStandPushups" if c == "HandstandPushups" else c
                rel = f"{c}/v_{stem}_g{g:02d}_c{clip:02d}.avi"
                _tiny_video(root / rel, ci + 3, g * 10 + clip, frames=24)
                (train if g < 3 else test).append((rel, ci + 1))
    for k in (1, 2, 3):
        (splits / f"trainlist0{k}.txt").write_text("".join(f"{r} {lab}\n" for r, lab in train))
        (splits / f"testlist0{k}.txt").write_text("".join(f"{r}\n" for r, _ in test))
    victim = root / train[1][0]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 3])
    return {"root": root, "splits": splits, "classes": classes, "bad": victim}


TINY = dict(dataset="synthetic", per_class=6, num_classes=4, frames=4, size=24, resize=28, width=0.125,
            epochs=2, batch_size=8, warmup_epochs=0)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A tiny teacher and distilled student, trained for real (seconds), and the student's ONNX."""
    from fts_edge.data.clips import check_clips
    from fts_edge.export.onnx import export_onnx
    from fts_edge.train.loop import TrainConfig, fit

    base = tmp_path_factory.mktemp("run")
    fit(TrainConfig.from_settings(dict(role="teacher", out=str(base / "teacher"), **TINY)))
    fit(TrainConfig.from_settings(dict(role="student", teacher=str(base / "teacher" / "best.pt"),
                                       out=str(base / "student"), **TINY)))
    from fts_edge.data.clipspec import ClipSpec
    spec = ClipSpec(frames=4, size=24, resize=28)
    video = SHARED / "vtest.avi"
    clips = check_clips(spec, None, str(video) if video.exists() else None, n_video=3)
    rep = export_onnx(base / "student" / "best.pt", base / "engines" / "student.onnx", parity_clips=clips)
    return {"base": base, "teacher": base / "teacher" / "best.pt", "student": base / "student" / "best.pt",
            "onnx": Path(rep["onnx"]), "export": rep, "spec": spec}


@pytest.fixture
def pair(tiny_run, tmp_path):
    """A copy of the tiny student's ONNX and its JSON in tmp_path/engines, free to edit."""
    import shutil

    from fts_edge.device.bundle import metadata_path

    d = tmp_path / "engines"
    d.mkdir()
    for f in (tiny_run["onnx"], metadata_path(tiny_run["onnx"])):
        shutil.copy(f, d / Path(f).name)
    return d / "student.onnx"


def lie(onnx_path, edit, where="both"):
    """Make an ONNX model's bundle lie: ``edit(meta)`` changes a copy of it, written into the model
    (``inside``), into the JSON beside it with the file's sha256 kept true (``beside``), or into
    both alike (``both``: a lie the two copies agree on, which only the graph can contradict)."""
    import copy
    import hashlib
    import json

    import onnx

    from fts_edge.device.bundle import EMBED_KEY, embed_bundle, metadata_path

    onnx_path = Path(onnx_path)
    proto = onnx.load(str(onnx_path))
    inside = json.loads(next(p.value for p in proto.metadata_props if p.key == EMBED_KEY))
    beside = json.loads(metadata_path(onnx_path).read_text()) if metadata_path(onnx_path).exists() else None
    edited = copy.deepcopy(inside)
    edit(edited)
    if where in ("inside", "both"):
        embed_bundle(proto, edited)
        onnx_path.write_bytes(proto.SerializeToString())
    sha = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    side = edited if where in ("beside", "both") else (beside or inside)
    metadata_path(onnx_path).write_text(json.dumps({**side, "onnx_sha256": sha}))
    return onnx_path
