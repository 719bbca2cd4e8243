import numpy as np
import pytest

from fts_edge.data.video import VideoError, probe, read_frames, write_video


@pytest.mark.parametrize("name,frames,hw", [("vtest.avi", 795, (576, 768)), ("Megamind.avi", 270, (528, 720))])
def test_real_videos_decode_every_frame(shared_data, name, frames, hw):
    a = read_frames(shared_data / name)
    assert a.dtype == np.uint8 and a.shape == (frames, *hw, 3)
    assert probe(shared_data / name)["frames"] == frames


def test_frames_are_rgb(tmp_path):
    red = np.zeros((3, 16, 16, 3), np.uint8)
    red[..., 0] = 220
    write_video(tmp_path / "red.avi", red)
    a = read_frames(tmp_path / "red.avi")
    assert a[..., 0].mean() > 180 and a[..., 2].mean() < 40


def test_truncated_copy_is_refused(shared_data, tmp_path):
    data = (shared_data / "vtest.avi").read_bytes()
    bad = tmp_path / "cut.avi"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(VideoError, match="truncated"):
        read_frames(bad)
    # Asked to, it returns what does decode, which is fewer frames than declared.
    assert 0 < len(read_frames(bad, strict=False, resize_short=32)) < 795


@pytest.mark.parametrize("content,match", [(None, "no such file"), (b"", "empty"),
                                           (b"RIFF" + bytes(range(256)) * 40, "not a readable video")])
def test_unreadable_files_raise_one_line(tmp_path, content, match):
    p = tmp_path / "x.avi"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(VideoError, match=match) as e:
        read_frames(p)
    assert "\n" not in str(e.value)


def test_random_bytes_raise(tmp_path):
    p = tmp_path / "noise.avi"
    p.write_bytes(np.random.default_rng(1).bytes(100_000))
    with pytest.raises(VideoError):
        read_frames(p)


def test_max_frames_and_resize(shared_data):
    a = read_frames(shared_data / "vtest.avi", max_frames=7, resize_short=64)
    assert a.shape == (7, 64, 85, 3)


@pytest.mark.parametrize("name", ["vtest.avi", "Megamind.avi", "real-clips/arm_wrestling.mp4",
                                  "real-clips/asl_bird.mkv", "real-clips/flipping_pancake.mkv"])
def test_reading_a_clips_frames_alone_gives_the_frames_a_whole_decode_gives(shared_data, name):
    """Training decodes only a clip's frames (skipping or seeking to the first): the same pixels,
    in AVI (MJPEG), MP4 and MKV; asking past the end says how many frames there really are."""
    import numpy as np

    from fts_edge.data.video import ShortVideo, read_frames, read_frames_at

    full = read_frames(shared_data / name, resize_short=64, strict=False)
    n = len(full)
    for idx in ([0, 2, 4, 6], [n - 7, n - 5, n - 3, n - 1], [n // 2 + 3 * k for k in range(6)], [9, 9, 1, 4]):
        idx = [i % n for i in idx]
        assert np.array_equal(read_frames_at(shared_data / name, idx, resize_short=64), full[idx]), idx
    with pytest.raises(ShortVideo) as e:
        read_frames_at(shared_data / name, [n + 2], resize_short=64)
    assert e.value.frames == n
