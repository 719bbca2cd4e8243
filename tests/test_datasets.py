import json

import numpy as np
import pytest
import torch

from fts_edge.cli import main
from fts_edge.core.errors import DatasetError
from fts_edge.data.clipspec import ClipSpec
from fts_edge.data.datasets import (
    check_dataset,
    dataset_index,
    folder_index,
    hmdb51_index,
    synthetic_index,
    ucf101_index,
)
from fts_edge.data.synthetic import MOTION_CLASSES, render_clip, write_motion_dataset
from fts_edge.train.data import VideoDataset

SPEC = ClipSpec(frames=4, size=24, resize=32)


def test_hmdb51_official_splits(hmdb_fixture):
    idx = hmdb51_index(hmdb_fixture["root"], hmdb_fixture["splits"], 1)
    assert idx.classes == hmdb_fixture["classes"]
    assert (len(idx.train), len(idx.test)) == (9, 3)
    assert all(it.path.endswith(".avi") for it in idx.train)
    # The split files differ: split 2 marks other videos for test.
    idx2 = hmdb51_index(hmdb_fixture["root"], hmdb_fixture["splits"], 2)
    assert {i.path for i in idx2.test} != {i.path for i in idx.test}


def test_ucf101_official_lists(ucf_fixture):
    idx = ucf101_index(ucf_fixture["root"], ucf_fixture["splits"], 1)
    assert idx.classes == ucf_fixture["classes"]
    assert (len(idx.train), len(idx.test)) == (8, 4)
    assert {it.label for it in idx.test} == {0, 1}


def test_malformed_split_file_is_a_clear_error(tmp_path, hmdb_fixture):
    (tmp_path / "a_test_split1.txt").write_text("video.avi 7\n")
    with pytest.raises(DatasetError, match="a_test_split1.txt:1"):
        hmdb51_index(hmdb_fixture["root"], tmp_path, 1)


@pytest.mark.parametrize("which", ["hmdb51", "ucf101"])
def test_data_check_reports_counts_and_corrupt_files(which, hmdb_fixture, ucf_fixture, capsys):
    fx = hmdb_fixture if which == "hmdb51" else ucf_fixture
    rc = main(["data", "check", "--dataset", which, "--root", str(fx["root"]), "--splits", str(fx["splits"]), "--json"])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["classes"] == len(fx["classes"])
    expected = {"hmdb51": (9, 2), "ucf101": (8, 4)}[which]
    assert (rep["train"], rep["test"]) == expected
    if which == "hmdb51":  # random bytes: nothing decodes
        assert [u["path"] for u in rep["unreadable"]] == [str(fx["bad"])]
        assert rep["unreadable"][0]["reason"]
    else:  # cut to a third: its container declares 24 frames, fewer decode; used with those, listed with both counts
        assert rep["unreadable"] == []
        (d,) = rep["declared_more_than_decode"]
        assert d["path"] == str(fx["bad"]) and d["declared"] == 24 and 0 < d["frames"] < 24


def test_data_check_text_and_missing_root(tmp_path, capsys):
    assert main(["data", "check", "--dataset", "ucf101", "--root", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_dataset_skips_unreadable_video_mid_epoch(hmdb_fixture):
    idx = hmdb51_index(hmdb_fixture["root"], hmdb_fixture["splits"], 1)
    ds = VideoDataset(idx.test, SPEC, mode="center")
    labels = [ds[i][1] for i in range(len(ds))]
    assert len(labels) == 3
    assert list(ds.unreadable) == [str(hmdb_fixture["bad"])]
    clip, _ = ds[0]
    assert clip.shape == (3, 4, 24, 24) and clip.dtype == torch.float32


def test_multi_clip_mode(ucf_fixture):
    idx = ucf101_index(ucf_fixture["root"], ucf_fixture["splits"], 1)
    ds = VideoDataset(idx.test, SPEC, mode="multi", num_clips=3)
    assert ds[0][0].shape == (3, 3, 4, 24, 24)


def test_folder_layouts(tmp_path):
    write_motion_dataset(tmp_path / "split", per_class=4, seed=1, num_classes=3, frames=6, height=32, width=32)
    idx = folder_index(tmp_path / "split")
    assert (len(idx.classes), len(idx.train), len(idx.test)) == (3, 9, 3)
    flat = tmp_path / "flat"
    for p in (tmp_path / "split" / "train").rglob("*.avi"):
        (flat / p.parent.name).mkdir(parents=True, exist_ok=True)
        (flat / p.parent.name / p.name).write_bytes(p.read_bytes())
    a, b = folder_index(flat, val_fraction=0.34, seed=3), folder_index(flat, val_fraction=0.34, seed=3)
    assert len(a.test) == 3 and len(a.train) == 6 and a.test == b.test
    assert not {i.path for i in a.train} & {i.path for i in a.test}


def test_motion_dataset_is_deterministic_and_written_as_videos(tmp_path):
    a, b = render_clip(2, seed=5, index=1, frames=6, height=32, width=32), render_clip(2, 5, 1, 6, 32, 32)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, render_clip(2, 6, 1, 6, 32, 32))
    assert main(["data", "synth", str(tmp_path / "m"), "--per-class", "4", "--classes", "3", "--frames", "6",
                 "--size", "32"]) == 0
    rep = check_dataset(dataset_index("synthetic", tmp_path / "m"))
    assert (rep["classes"], rep["train"], rep["test"], rep["unreadable"]) == (3, 9, 3, [])
    assert rep["frames"] == {"min": 6, "max": 6}


def test_background_contrast_only_changes_the_backdrop(tmp_path, capsys):
    textured = render_clip(0, seed=3, index=2, frames=6, height=48, width=48)
    flat = render_clip(0, seed=3, index=2, frames=6, height=48, width=48, background=0.0)
    np.testing.assert_array_equal(textured, render_clip(0, 3, 2, 6, 48, 48, background=1.0))  # default unchanged
    # Flat backdrop: the pixels that never change over the clip are one colour; textured: many colours.
    static = (flat == flat[:1]).all(axis=(0, 3))
    assert static.mean() > 0.3
    assert np.ptp(flat[0][static], axis=0).max() <= 1 and np.ptp(textured[0][static], axis=0).max() > 40
    # Same draws and trajectory: where the object covers the backdrop, the two videos are identical.
    same = (flat == textured).all(axis=-1).mean()
    assert 0.03 < same < 0.6
    with pytest.raises(ValueError, match="background"):
        render_clip(0, 3, 2, 6, 48, 48, background=1.5)
    assert main(["data", "synth", str(tmp_path / "m"), "--per-class", "2", "--classes", "2", "--frames", "4",
                 "--size", "32", "--background", "2"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "background" in err[0]


def test_motion_dataset_on_the_fly_has_no_flip():
    idx = synthetic_index(per_class=4, seed=0, num_classes=10)
    assert idx.flip is False and idx.classes == list(MOTION_CLASSES)
    assert (len(idx.train), len(idx.test)) == (30, 10)


def _fit_linear(x_train, y_train, x_test, y_test, classes, steps=300):
    torch.manual_seed(0)
    lin = torch.nn.Linear(x_train.shape[1], classes)
    opt = torch.optim.Adam(lin.parameters(), lr=0.01, weight_decay=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(lin(x_train), y_train).backward()
        opt.step()
    return (lin(x_test).argmax(1) == y_test).float().mean().item()


def test_one_frame_says_nothing_but_motion_says_everything():
    """A per-frame classifier is near chance; the same classifier on frame differences is not."""
    classes, per_class, size = 4, 60, 24
    pick = [0, 1, 2, 3]  # left, right, up, down: the same objects, only the direction differs
    frames, diffs, labels = [], [], []
    for c in pick:
        for i in range(per_class):
            v = render_clip(c, seed=11, index=i, frames=8, height=size, width=size).astype(np.float32) / 255
            g = v.mean(-1)
            frames.append(g[4].ravel())
            # horizontal and vertical motion energy: where the frame difference meets the gradient
            gx, gy = np.gradient(g[3], axis=1), np.gradient(g[3], axis=0)
            dt = g[4] - g[3]
            diffs.append(np.array([(dt * gx).sum(), (dt * gy).sum()]) * 10)
            labels.append(pick.index(c))
    y = torch.tensor(labels)
    tr = torch.arange(len(y)) % 4 != 0
    te = ~tr
    xf = torch.tensor(np.array(frames))
    xd = torch.tensor(np.array(diffs), dtype=torch.float32)
    acc_frame = _fit_linear(xf[tr], y[tr], xf[te], y[te], classes)
    acc_motion = _fit_linear(xd[tr], y[tr], xd[te], y[te], classes)
    assert acc_frame < 0.25 + 0.15, acc_frame
    assert acc_motion > 0.8, acc_motion


def test_limited_centre_clips_cover_every_class_not_just_the_first():
    from fts_edge.data.datasets import centre_clips, synthetic_index

    idx = synthetic_index(5, 0, 4)  # 4 classes, ordered by class in the list
    spec = ClipSpec(frames=4, size=16, resize=16)
    items = idx.train + idx.test
    items.sort(key=lambda it: it.label)
    clips, labels = centre_clips(items, spec, limit=8)
    assert clips.shape == (8, 3, 4, 16, 16)
    assert sorted(set(labels.tolist())) == [0, 1, 2, 3]  # the first 8 would be classes 0 and 1 only
    _, all_labels = centre_clips(items, spec)
    assert len(all_labels) == len(items)


def test_ucf101_at_its_real_size_indexes_checks_and_trains_a_step(shared_data, tmp_path, capsys):
    """UCF101's official split files (13,320 names, CRLF line ends) over stand-in videos of every
    name: the index, `fts-edge data check` and one training step of the RGB network over it."""
    import os

    from fts_edge.cli import main
    from fts_edge.data.datasets import ucf101_index
    from fts_edge.data.synthetic import render_clip
    from fts_edge.data.video import write_video
    from fts_edge.train.config import TrainConfig
    from fts_edge.train.loop import fit

    splits = shared_data / "splits" / "ucf101"
    root = tmp_path / "UCF-101"
    classes = [line.split()[1] for line in (splits / "classInd.txt").read_text().splitlines() if line.strip()]
    names = {line.split()[0] for f in ("trainlist01.txt", "testlist01.txt")
             for line in (splits / f).read_text().splitlines() if line.strip()}
    assert len(classes) == 101 and len(names) == 13320
    stand_in = {}
    for rel in sorted(names):  # one real video a class, hard-linked under every name of it
        cls = rel.split("/")[0]
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if cls not in stand_in:
            stand_in[cls] = target
            write_video(target, render_clip(len(stand_in) % 10, 0, len(stand_in), frames=8, height=16, width=20))
        else:
            os.link(stand_in[cls], target)
    idx = ucf101_index(root, splits, 1)
    assert len(idx.classes) == 101 and (len(idx.train), len(idx.test)) == (9537, 3783) and not idx.anomalies
    assert main(["data", "check", "--dataset", "ucf101", "--root", str(root), "--splits", str(splits),
                 "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert (rep["classes"], rep["train"], rep["test"], rep["unreadable"]) == (101, 9537, 3783, [])
    cfg = TrainConfig.from_settings(dict(role="rgb", alpha=0.0, dataset="ucf101", root=str(root), splits=str(splits),
                                         frames=4, size=8, resize=16, width=0.0625, batch_size=4, epochs=1,
                                         warmup_epochs=0, threads=1, out=str(tmp_path / "run")))
    assert fit(cfg, stop_after_steps=1) == {"stopped_at_step": 1, "epoch": 0}


def test_the_hard_motion_set_shakes_flickers_and_distracts_and_leaves_the_plain_set_as_it_was(tmp_path, capsys):
    """`fts-edge data synth --shake --flicker --distractors` renders the nuisances; without them a
    video is the one rendered before (the demo's set does not change)."""
    import numpy as np

    from fts_edge.cli import main
    from fts_edge.data.synthetic import Nuisance, render_clip

    plain = render_clip(2, 0, 3, 16, 64, 64)
    assert np.array_equal(plain, render_clip(2, 0, 3, 16, 64, 64, nuisance=Nuisance()))
    lit = render_clip(2, 0, 3, 16, 64, 64, nuisance=Nuisance(flicker=0.15)).reshape(16, -1).mean(1)
    ratio = lit / plain.reshape(16, -1).mean(1)
    assert 0.8 < ratio.min() < 0.97 and 1.03 < ratio.max() < 1.2  # +-15%, clipped at white
    shaken = render_clip(2, 0, 3, 16, 64, 64, nuisance=Nuisance(shake=1.5))
    assert np.abs(shaken[0].astype(int) - plain[0]).mean() < 1.0  # the walk starts at rest
    assert np.abs(shaken[-1].astype(int) - plain[-1]).mean() > 5.0  # and has moved the view by the end
    busy = render_clip(2, 0, 3, 16, 64, 64, nuisance=Nuisance(distractors=2))
    assert (np.abs(busy.astype(int) - plain).max(-1) > 20).mean() > 0.03  # more than 3% of pixels: another object
    assert main(["data", "synth", str(tmp_path / "hard"), "--per-class", "1", "--classes", "2", "--frames", "8",
                 "--size", "32", "--shake", "1.5", "--flicker", "0.15", "--distractors", "1",
                 "--val-fraction", "0"]) == 0
    assert "shake 1.5, flicker 0.15, distractors 1" in capsys.readouterr().out
    assert len(list((tmp_path / "hard").rglob("*.avi"))) == 2
    assert main(["data", "synth", str(tmp_path / "bad"), "--flicker", "1.5"]) == 2
