"""Numbers that cannot be silently wrong: roles checked in the table, unreadable test videos left
out and reported (never replaced by duplicates), split-file anomalies reported and refused."""
import shutil

import pytest
import torch

from fts_edge.cli import main
from fts_edge.core.errors import CheckpointError, DatasetError
from fts_edge.data.clipspec import ClipSpec
from fts_edge.data.datasets import hmdb51_index
from fts_edge.nets.models import create_model
from fts_edge.train.data import ClipSet
from fts_edge.train.evaluate import evaluate, score
from fts_edge.train.loop import TrainConfig, fit


def test_a_teacher_passed_as_the_student_is_refused(tiny_run):
    with pytest.raises(CheckpointError, match="--student: a 'teacher' checkpoint"):
        evaluate(None, None, str(tiny_run["teacher"]))
    with pytest.raises(CheckpointError, match="--teacher: a 'student' checkpoint"):
        evaluate(None, str(tiny_run["student"]), None)


def test_unreadable_test_videos_are_left_out_not_replaced(hmdb_fixture):
    idx = hmdb51_index(hmdb_fixture["root"], hmdb_fixture["splits"], 1)
    spec = ClipSpec(frames=4, size=24, resize=28)
    ds = ClipSet(idx.test, spec, False, idx.flip)
    torch.manual_seed(0)
    res = score(create_model("r3d_18", 3, width=0.125), ds, "rgb", batch_size=2)
    assert len(res["labels"]) == len(idx.test) - 1  # the random-bytes video is not scored
    assert str(hmdb_fixture["bad"]) in res["unreadable"]
    assert sorted(res["labels"].tolist()) == sorted(i.label for i in idx.test if i.path != str(hmdb_fixture["bad"]))


@pytest.fixture
def anomalous_split(hmdb_fixture, tmp_path):
    splits = tmp_path / "splits"
    shutil.copytree(hmdb_fixture["splits"], splits)
    f = splits / "wave_test_split1.txt"
    first = f.read_text().splitlines()[0].split()[0]
    f.write_text(f.read_text() + f"{first} 2\n")  # the same video for training and for testing
    (splits / "brush_hair_test_split1.txt").write_text("")  # an empty split file
    return hmdb_fixture["root"], splits


def test_split_anomalies_are_reported_and_refused(anomalous_split, tmp_path, capsys):
    root, splits = anomalous_split
    idx = hmdb51_index(root, splits, 1)
    assert any("listed for training and for testing" in a for a in idx.anomalies)
    assert any("'brush_hair': 0 training and 0 test videos" in a for a in idx.anomalies)
    assert main(["data", "check", "--dataset", "hmdb51", "--root", str(root), "--splits", str(splits)]) == 0
    out = capsys.readouterr().out
    assert "warning:" in out and "listed for training and for testing" in out
    cfg = dict(role="rgb", dataset="hmdb51", root=str(root), splits=str(splits), frames=4, size=24, resize=28,
               width=0.125, epochs=1, batch_size=2, warmup_epochs=0, alpha=0.0, optimizer="adamw", lr=1e-3)
    with pytest.raises(DatasetError, match="--allow-split-anomalies"):
        fit(TrainConfig.from_settings(dict(out=str(tmp_path / "r"), **cfg)))
    fit(TrainConfig.from_settings(dict(out=str(tmp_path / "r2"), allow_split_anomalies=True, **cfg)))
