"""--rgb-illumination normalize: each RGB frame brought to one mean brightness before the network.
Real footage scaled frame by frame reaches the network unchanged; the setting travels in the
ClipSpec from training to the checkpoint, the ONNX bundle and the runtime that preprocesses for it;
what cannot apply it (DeepStream's per-channel preprocessing) refuses the model."""
import json

import numpy as np
import pytest

FLICKER = np.array([1.0, 1.15, 0.85, 1.1, 0.9, 1.05])


def _frames(shared_data, n=6):
    from fts_edge.data.video import read_frames

    frames = read_frames(shared_data / "vtest.avi", max_frames=n)
    return (frames.astype(np.float32) * 0.75).astype(np.uint8)  # headroom: 1.15 x never clips


def _flicker(frames):
    g = FLICKER[: len(frames)].reshape(-1, 1, 1, 1)
    return np.clip(np.rint(frames.astype(np.float32) * g), 0, 255).astype(np.uint8)


def test_flicker_reaches_the_network_as_no_change(shared_data):
    from fts_edge.data.clipspec import ClipSpec
    from fts_edge.data.transforms import light_gain, preprocess_clip, preprocess_frame

    frames = _frames(shared_data)
    lit = _flicker(frames)
    plain = ClipSpec(frames=6, size=64, resize=72)
    norm = plain.replace(rgb_illumination="normalize")
    # without it, the light's change is in the input: a 15% step moves the clip by a lot
    assert np.abs(preprocess_clip(lit, plain) - preprocess_clip(frames, plain)).max() > 0.3
    # with it, the flickering clip is the steady one up to the uint8 rounding of the flicker
    a, b = preprocess_clip(lit, norm), preprocess_clip(frames, norm)
    assert np.abs(a - b).max() < 0.05
    # training's random crop and the camera's one frame at a time apply the same step
    rng = np.random.default_rng(0)
    t = preprocess_clip(lit, norm, train=True, rng=rng)
    assert np.abs(t - preprocess_clip(frames, norm, train=True, rng=np.random.default_rng(0))).max() < 0.05
    assert np.array_equal(np.stack([preprocess_frame(f, norm) for f in lit], axis=1), a)
    # every frame ends at one brightness: the normalisation's mean
    target = 255.0 * np.mean(norm.mean)
    from fts_edge.data.transforms import denormalise
    assert np.allclose(denormalise(a, norm).mean(axis=(0, 2, 3)), target, atol=0.5)
    # a black frame is raised at most MAX_LIGHT_GAIN times, not blown up into noise
    assert light_gain(np.zeros((8, 8, 3), np.uint8), norm) == pytest.approx(8.0)


def test_the_setting_is_declared_once_and_old_artifacts_read_unchanged():
    from fts_edge.core.errors import UsageError
    from fts_edge.data.clipspec import ClipSpec
    from fts_edge.pipeline import ADDED_RECIPE, PRESETS
    from fts_edge.train.config import TrainConfig, changed_settings

    assert "rgb_illumination" not in ClipSpec().to_dict()  # bundles written before it are byte-identical
    spec = ClipSpec(rgb_illumination="normalize")
    assert ClipSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(UsageError, match="--rgb-illumination must be one of none, normalize"):
        ClipSpec(rgb_illumination="gamma")
    cfg = TrainConfig.from_settings({"rgb_illumination": "normalize", "role": "rgb", "alpha": 0})
    assert cfg.spec.rgb_illumination == "normalize" and cfg.settings()["rgb_illumination"] == "normalize"
    # it changes what the network learns from: --resume refuses a change of it
    assert changed_settings(cfg.settings(), TrainConfig.from_settings({"role": "rgb", "alpha": 0})) == [
        "--rgb-illumination 'normalize' (now 'none')"]
    assert PRESETS["small"].clip.rgb_illumination == ADDED_RECIPE["rgb_illumination"] == "none"


def test_a_student_trained_with_it_carries_it_to_the_deployed_model(tmp_path, shared_data, tiny_run):
    from fts_edge.core.errors import FtsError
    from fts_edge.data.clipspec import ClipSpec
    from fts_edge.data.transforms import preprocess_clip
    from fts_edge.device.bundle import load_bundle
    from fts_edge.device.deepstream import deepstream_config
    from fts_edge.device.runtime import OnnxClassifier
    from fts_edge.export.onnx import export_onnx
    from fts_edge.nets.checkpoint import load_checkpoint
    from fts_edge.train.evaluate import evaluate
    from fts_edge.train.loop import TrainConfig, fit
    from tests.conftest import TINY

    # the tiny run's teacher, trained on plain clips, teaches it: the teacher reads flow, not the pixels
    fit(TrainConfig.from_settings(dict(role="student", teacher=str(tiny_run["teacher"]), out=str(tmp_path / "s"),
                                       rgb_illumination="normalize", **TINY)))
    ck = load_checkpoint(tmp_path / "s" / "best.pt")
    assert ck["clip_spec"]["rgb_illumination"] == "normalize"
    # the table scores each network on the clips as it reads them
    table = evaluate(None, str(tiny_run["teacher"]), str(tmp_path / "s" / "best.pt"))
    assert [r["method"] for r in table["rows"]] == ["flow (teacher)", "distilled student"]
    rep = export_onnx(tmp_path / "s" / "best.pt", tmp_path / "e" / "student.onnx")
    meta = load_bundle(rep["onnx"])
    assert meta["clip_spec"]["rgb_illumination"] == "normalize"
    clf = OnnxClassifier(rep["onnx"], meta)
    assert clf.spec == ClipSpec.from_dict(ck["clip_spec"])
    # what predict and the camera feed it (preprocess with the bundle's spec): flicker changes nothing
    frames = _frames(shared_data, clf.spec.frames)
    steady = clf.classify(preprocess_clip(frames, clf.spec))
    assert np.allclose(clf.classify(preprocess_clip(_flicker(frames), clf.spec)), steady, atol=1e-3)
    with pytest.raises(FtsError, match="--rgb-illumination normalize"):
        deepstream_config(rep["onnx"], tmp_path / "ds")
