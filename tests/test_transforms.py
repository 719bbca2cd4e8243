import numpy as np
import pytest
import torch

from fts_edge.data.clipspec import ClipSpec
from fts_edge.data.transforms import denormalise, preprocess_clip, preprocess_frame, sample_indices

SPEC = ClipSpec(frames=5, size=16, resize=20, stride=2)


def test_sampling_modes():
    rng = np.random.default_rng(0)
    (c,) = sample_indices(100, SPEC, "center")
    assert list(np.diff(c)) == [2] * 4 and c[0] == (100 - 9) // 2
    multi = sample_indices(100, SPEC, "multi", num_clips=4)
    assert [m[0] for m in multi] == [0, 30, 61, 91] and multi[-1][-1] == 99
    starts = {int(sample_indices(100, SPEC, "random", rng)[0][0]) for _ in range(50)}
    assert len(starts) > 10 and max(starts) <= 91


def test_short_videos_loop_instead_of_crashing():
    (c,) = sample_indices(3, SPEC, "center")
    assert len(c) == 5 and c.max() < 3
    assert len(sample_indices(1, SPEC, "multi", num_clips=3)) == 3


def test_eval_clip_is_the_per_frame_function(shared_data):
    from fts_edge.data.video import read_frames

    frames = read_frames(shared_data / "Megamind.avi", max_frames=5)
    clip = preprocess_clip(frames, SPEC)
    assert clip.shape == (3, 5, 16, 16) and clip.dtype == np.float32
    for t in range(5):
        np.testing.assert_array_equal(clip[:, t], preprocess_frame(frames[t], SPEC))


def test_train_crop_and_flip_are_shared_by_all_frames():
    frames = np.repeat(np.random.default_rng(0).integers(0, 255, (1, 30, 40, 3), dtype=np.uint8), 4, 0)
    spec = ClipSpec(frames=4, size=16, resize=30)
    clip = preprocess_clip(frames, spec, train=True, rng=np.random.default_rng(3))
    for t in range(1, 4):
        np.testing.assert_array_equal(clip[:, t], clip[:, 0])


def test_flip_is_random_when_allowed_and_never_when_not():
    frames = np.random.default_rng(0).integers(0, 255, (3, 16, 16, 3), dtype=np.uint8)
    spec = ClipSpec(frames=3, size=16, resize=16)  # no room to crop: only the flip varies
    plain = preprocess_clip(frames, spec)
    mirrored = preprocess_clip(np.ascontiguousarray(frames[:, :, ::-1]), spec)
    seen = [preprocess_clip(frames, spec, train=True, rng=np.random.default_rng(s)) for s in range(12)]
    assert any(np.array_equal(c, plain) for c in seen) and any(np.array_equal(c, mirrored) for c in seen)
    kept = [preprocess_clip(frames, spec, train=True, rng=np.random.default_rng(s), flip=False) for s in range(12)]
    assert all(np.array_equal(c, plain) for c in kept)


def test_normalisation_round_trips():
    frames = np.random.default_rng(0).integers(0, 255, (2, 16, 16, 3), dtype=np.uint8)
    spec = ClipSpec(frames=2, size=16, resize=16)
    clip = preprocess_clip(frames, spec)
    back = denormalise(clip, spec)
    np.testing.assert_allclose(back.transpose(1, 2, 3, 0), frames, atol=1e-3)
    tback = denormalise(torch.from_numpy(clip)[None], spec)
    np.testing.assert_allclose(tback[0].numpy(), back, atol=1e-4)


def test_clipspec_validates_and_round_trips():
    from fts_edge.core.errors import UsageError

    with pytest.raises(UsageError, match="--frames must be at least 2, got 1"):
        ClipSpec(frames=1)
    with pytest.raises(UsageError, match="--resize must be at least --size"):
        ClipSpec(size=128, resize=112)
    s = ClipSpec(frames=9, stride=2)
    assert ClipSpec.from_dict(s.to_dict()) == s and s.span == 17
