"""--unlabeled: the student also follows the teacher on videos that have no labels (the mimic terms
only). What the labeled set is told apart from, what the loss takes from an unlabeled clip, and a
real teacher and student trained with such a folder."""
import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F


def _motion_folder(path, seed=0, per_class=4, classes=3, frames=10, size=32):
    from fts_edge.data.synthetic import write_motion_dataset

    write_motion_dataset(path, per_class, seed, classes, frames, size, size + 8, val_fraction=0.25)
    return path


def test_unlabeled_videos_are_found_anywhere_below_and_never_the_validation_set(tmp_path):
    from fts_edge.core.errors import DatasetError
    from fts_edge.data.datasets import UNLABELED, folder_index, unlabeled_items

    data = _motion_folder(tmp_path / "data")
    index = folder_index(data)
    extra = _motion_folder(tmp_path / "footage" / "day1", seed=5)  # any layout: class folders mean nothing here
    items = unlabeled_items(tmp_path / "footage", index)
    assert len(items) == 12 and {i.label for i in items} == {UNLABELED}
    assert all(str(extra) in i.path for i in items)
    # the labeled training videos are left out (they are there with their labels)...
    with pytest.raises(DatasetError, match="labeled training set"):
        unlabeled_items(data / "train", index)
    # ...and the validation videos refused: following the teacher on them would train on the table's clips
    with pytest.raises(DatasetError, match="3 of its videos are validation videos"):
        unlabeled_items(data, index)
    with pytest.raises(DatasetError, match="not found"):
        unlabeled_items(tmp_path / "nothing", index)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no videos"):
        unlabeled_items(tmp_path / "empty", index)


def test_an_unlabeled_clip_adds_the_mimic_and_no_cross_entropy():
    from fts_edge.train.distill import distillation_loss, mimic_term

    torch.manual_seed(0)
    logits, f, ft = torch.randn(6, 4), torch.randn(6, 8), torch.randn(6, 8)
    y = torch.tensor([0, 1, -1, 2, -1, 3])
    labeled = y >= 0
    loss, ce, _ = distillation_loss(logits, y, f, ft, 10.0, mimic="correlation", labeled=labeled)
    assert torch.allclose(ce, F.cross_entropy(logits[labeled], y[labeled]))
    assert torch.allclose(loss, ce + 10.0 * mimic_term(f, ft, "correlation"))  # the mimic over all six
    # a batch of unlabeled clips only: no cross-entropy at all, the loss finite, the classifier untouched
    w = torch.randn(8, 4, requires_grad=True)
    feats = torch.randn(4, 8, requires_grad=True)
    none = torch.zeros(4, dtype=torch.bool)
    loss, ce, _ = distillation_loss(feats @ w, torch.full((4,), -1), feats, torch.randn(4, 8), 10.0, labeled=none)
    assert ce.item() == 0.0 and torch.isfinite(loss)
    loss.backward()
    assert w.grad is not None and float(w.grad.abs().sum()) == 0.0 and float(feats.grad.abs().sum()) > 0


def test_kd_teaches_the_classifier_on_unlabeled_clips_what_the_teacher_predicts():
    from fts_edge.train.distill import distillation_loss, kd_term

    torch.manual_seed(0)
    t_logits = torch.randn(4, 5)
    assert abs(float(kd_term(t_logits.clone(), t_logits, 4.0))) < 1e-6  # the teacher's own answer costs nothing
    s_logits = torch.randn(4, 5)
    p_t, log_p_s = F.softmax(t_logits / 2.0, 1), F.log_softmax(s_logits / 2.0, 1)
    by_hand = float((p_t * (p_t.log() - log_p_s)).sum(1).mean() * 4.0)
    assert abs(float(kd_term(s_logits, t_logits, 2.0)) - by_hand) < 1e-5
    # a batch of unlabeled clips only: the mimic leaves the classifier untouched, --kd moves it toward
    # the teacher's classes (the loss falls along its gradient)
    w = torch.randn(8, 5, requires_grad=True)
    feats, ft = torch.randn(4, 8), torch.randn(4, 8)
    none = torch.zeros(4, dtype=torch.bool)
    y = torch.full((4,), -1)
    loss, ce, _ = distillation_loss(feats @ w, y, feats, ft, 10.0, labeled=none, kd=(1.0, 2.0, t_logits))
    assert ce.item() == 0.0 and loss.item() > distillation_loss(feats @ w, y, feats, ft, 10.0, labeled=none)[0].item()
    loss.backward()
    assert float(w.grad.abs().sum()) > 0
    with torch.no_grad():
        after = kd_term(feats @ (w - 0.1 * w.grad), t_logits, 2.0)
    assert float(after) < float(kd_term(feats @ w.detach(), t_logits, 2.0))


def test_a_student_follows_the_teacher_on_unlabeled_videos(tmp_path):
    """A real teacher, then a student with --unlabeled: the unlabeled videos' flow goes into the
    teacher's store, an epoch runs over labeled and unlabeled clips together, accuracy is the
    labeled clips', and the checkpoint records the folder (a --resume with another is refused)."""
    from fts_edge.core.errors import FtsError
    from fts_edge.nets.checkpoint import load_checkpoint
    from fts_edge.train.config import TrainConfig
    from fts_edge.train.loop import fit, flow_store

    data = _motion_folder(tmp_path / "data")
    footage = _motion_folder(tmp_path / "footage", seed=5, per_class=8)  # 24 videos, no labels used
    base = dict(dataset="folder", root=str(data), frames=4, size=24, resize=28, width=0.125, epochs=1,
                batch_size=4, warmup_epochs=0, flow_cache=str(tmp_path / "flow"))
    fit(TrainConfig.from_settings(dict(base, role="teacher", out=str(tmp_path / "t"))))
    s = TrainConfig.from_settings(dict(base, role="student", out=str(tmp_path / "s"), mimic="correlation",
                                       teacher=str(tmp_path / "t" / "last.pt"), unlabeled=str(footage), kd=1.0))
    assert fit(s)["epochs"] == 1
    store = flow_store(s)
    assert all(store.has(str(p)) for p in footage.rglob("*.avi"))
    row = json.loads((tmp_path / "s" / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0.0 <= row["train_top1"] <= 100.0 and row["train_ce"] > 0
    ck = load_checkpoint(tmp_path / "s" / "last.pt")
    assert ck["config"]["unlabeled"] == str(footage) and ck["config"]["kd"] == 1.0
    other = _motion_folder(tmp_path / "other", seed=9)
    with pytest.raises(FtsError, match="unlabeled") as e:
        fit(TrainConfig.from_settings(dict(base, role="student", out=str(tmp_path / "s"), mimic="correlation",
                                           teacher=str(tmp_path / "t" / "last.pt"), unlabeled=str(other),
                                           epochs=2)))
    assert "validation" not in str(e.value)


def test_unlabeled_is_a_students_setting_and_one_line_where_it_cannot_be():
    from fts_edge.train.config import TrainConfig

    with pytest.raises(ValueError, match="needs a student with --teacher"):
        TrainConfig(role="teacher", unlabeled="footage")
    with pytest.raises(ValueError, match="needs a student with --teacher"):
        TrainConfig(role="rgb", alpha=0.0, unlabeled="footage")
    with pytest.raises(ValueError, match="--kd follows the teacher"):
        TrainConfig(role="rgb", alpha=0.0, kd=1.0)
    from fts_edge.core.errors import UsageError

    with pytest.raises(UsageError, match="--kd-temperature"):
        TrainConfig(role="student", teacher="t.pt", kd=1.0, kd_temperature=0.0)
    r = subprocess.run([sys.executable, "-m", "fts_edge", "train", "data", "--unlabeled", "footage",
                        "--crop", "person"], capture_output=True, text=True)
    assert r.returncode == 2 and "--unlabeled with --crop person" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "fts_edge", "train", "data", "--kd", "-1"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "--kd" in r.stderr and "Traceback" not in r.stderr


def test_fts_edge_train_gives_the_unlabeled_videos_to_the_students_only(tmp_path):
    from fts_edge.cli import build_parser, train_settings
    from fts_edge.trainrun import TrainRun

    (tmp_path / "footage").mkdir()
    a = build_parser().parse_args(["train", str(tmp_path / "data"), "--unlabeled", str(tmp_path / "footage"),
                                   "--streaming", "--kd", "1", "--out", str(tmp_path / "run")])
    s, out = train_settings(a)
    assert s.unlabeled == str((tmp_path / "footage").resolve())
    run = TrainRun(out, s, say=lambda *_: None)
    assert run.train_cfg("student", teacher="t.pt").unlabeled == s.unlabeled
    assert run.streaming_cfgs()[1].unlabeled == s.unlabeled  # the streaming student too
    assert run.streaming_cfgs()[0].unlabeled is None  # not the teacher's causal copy
    assert run.train_cfg("teacher").unlabeled is None and run.train_cfg("rgb", alpha=0.0).unlabeled is None
    assert run.train_cfg("student", teacher="t.pt").kd == 1.0 and run.streaming_cfgs()[1].kd == 1.0
    assert run.streaming_cfgs()[0].kd == 0.0 and run.train_cfg("rgb", alpha=0.0).kd == 0.0
    assert '"unlabeled"' in (tmp_path / "run" / "settings.json").read_text()
