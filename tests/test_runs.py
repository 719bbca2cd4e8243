"""Runs that cannot be corrupted: one writer per run folder, an epoch committed by last.pt with
best.pt and the metrics before it, a kill at any write followed by a resume ending in the same
folder and weights as an uninterrupted run, and settings that would do nothing or define another
run refused at the start."""
import json
import multiprocessing as mp

import pytest
import torch

from fts_edge.core.errors import CheckpointError, FtsError, UsageError
from fts_edge.nets.checkpoint import load_checkpoint
from fts_edge.train.loop import RunLock, TrainConfig, fit, read_jsonl

TINY = dict(dataset="synthetic", per_class=6, num_classes=4, frames=4, size=24, resize=28, width=0.125, epochs=2,
            batch_size=8, warmup_epochs=0, role="rgb", alpha=0.0, optimizer="adamw", lr=1e-3, threads=1)


def _weights(path):
    return load_checkpoint(path)["model"]


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    fit(TrainConfig.from_settings(dict(out=str(out), **TINY)))
    return out


def _writes():
    """The write calls of one epoch, in the order fit makes them."""
    import fts_edge.train.loop as t
    return [("save_checkpoint", t), ("save_with_bundle", t), ("_append_jsonl", t)]


@pytest.mark.parametrize("kill_at", range(1, 6))  # every write of epoch 1 (3) and of epoch 2 (2 or 3)
def test_a_kill_at_any_write_then_resume_equals_an_uninterrupted_run(kill_at, uninterrupted, tmp_path, monkeypatch):
    import fts_edge.train.loop as t

    calls = []
    originals = {name: getattr(t, name) for name, _ in _writes()}

    def killer(name):
        def write(*args, **kw):
            calls.append(name)
            if len(calls) == kill_at:
                # a kill in the middle of this write: a temporary is left, the file is not replaced
                (tmp_path / f".{name}.partial.tmp").write_bytes(b"half")
                raise KeyboardInterrupt
            return originals[name](*args, **kw)
        return write

    for name, _ in _writes():
        monkeypatch.setattr(t, name, killer(name))
    with pytest.raises(KeyboardInterrupt):
        fit(TrainConfig.from_settings(dict(out=str(tmp_path), **TINY)))
    for name, _ in _writes():
        monkeypatch.setattr(t, name, originals[name])
    fit(TrainConfig.from_settings(dict(out=str(tmp_path), **TINY)), resume=True)
    assert _same(_weights(tmp_path / "last.pt"), _weights(uninterrupted / "last.pt"))
    assert _same(_weights(tmp_path / "best.pt"), _weights(uninterrupted / "best.pt"))
    assert [r["epoch"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2]
    last = load_checkpoint(tmp_path / "last.pt")
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["checkpoint_sha256"]  # best.json describes the best.pt beside it
    assert last["best_metric"] == load_checkpoint(tmp_path / "best.pt")["best_metric"]
    assert not list(tmp_path.glob(".*.tmp"))


def _hold_lock(out, ready, release):
    with RunLock(out):
        ready.set()
        release.wait(30)


def test_a_second_writer_is_refused_with_the_name_of_the_first(tmp_path):
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold_lock, args=(tmp_path, ready, release))
    p.start()
    try:
        assert ready.wait(60)
        with pytest.raises(FtsError, match=rf"in use by another training run \(pid {p.pid} on"):
            fit(TrainConfig.from_settings(dict(out=str(tmp_path), **TINY)))
    finally:
        release.set()
        p.join(30)
    # free again once the first has gone
    fit(TrainConfig.from_settings(dict(out=str(tmp_path), **{**TINY, "epochs": 1})))


def test_resume_refuses_settings_that_define_another_run(uninterrupted):
    for change, flag in (({"frames": 6}, "--frames 4 (now 6)"), ({"seed": 3}, "--seed 0 (now 3)"),
                         ({"lr": 3e-3}, "--lr 0.001 (now 0.003)")):
        with pytest.raises(CheckpointError, match=flag.replace("(", r"\(").replace(")", r"\)")):
            fit(TrainConfig.from_settings(dict(out=str(uninterrupted), **{**TINY, **change})), resume=True)
    # not run-defining
    fit(TrainConfig.from_settings(dict(out=str(uninterrupted), **{**TINY, "threads": 2})), resume=True)


@pytest.mark.parametrize("change,message", [
    ({"epochs": 0}, "--epochs must be at least 1"),
    ({"batch_size": -4}, "--batch-size must be at least 1"),
    ({"alpha": -1.0}, "--alpha must be at least 0.0"),
    ({"clip_grad": -1.0}, "--clip-grad must be at least 0.0"),
    ({"lr": 0.0}, "--lr must be above 0"),
])
def test_settings_that_would_do_nothing_or_harm_are_refused(change, message):
    with pytest.raises(UsageError, match=message):
        TrainConfig.from_settings(dict(**{**TINY, **change}))


def test_a_batch_larger_than_the_dataset_is_refused(tmp_path):
    with pytest.raises(UsageError, match="larger than the training set"):
        fit(TrainConfig.from_settings(dict(out=str(tmp_path), **{**TINY, "batch_size": 1000})))
    assert not (tmp_path / "last.pt").exists()
