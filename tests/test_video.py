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


# -- hardware decoding on a Jetson ------------------------------------------------------------------------
# jetson-utils (codec/gstDecoder.cpp, buildLaunchStr, with its V4L2 decoder and NVMM output off) builds
# for rtsp://URI:  rtspsrc location=URI latency=2000 ! queue ! rtph264depay ! h264parse !
#                  nvv4l2decoder name=decoder enable-max-performance=1 ! video/x-raw(memory:NVMM) !
#                  nvvidconv name=vidconv ! video/x-raw ! appsink name=mysink sync=false
# for FILE.mp4:    filesrc location=FILE.mp4 ! qtdemux ! queue ! h264parse ! nvv4l2decoder ... (the same tail)
# (matroskademux for .mkv; h265 depayloader and parser for H.265). Element names are left out here;
# the tail converts to BGR for OpenCV's appsink instead of jetson-utils' CUDA colour conversion.
JETSON_UTILS_RTSP = ["rtspsrc location=rtsp://cam.local:8554/live latency=2000", "queue", "rtph264depay", "h264parse",
                     "nvv4l2decoder enable-max-performance=1", "video/x-raw(memory:NVMM)", "nvvidconv"]
JETSON_UTILS_MP4 = ["filesrc location=clips/walk.mp4", "qtdemux", "queue", "h264parse",
                    "nvv4l2decoder enable-max-performance=1", "video/x-raw(memory:NVMM)", "nvvidconv"]


def test_hardware_decoding_pipelines_are_jetson_utils_chains():
    from fts_edge.data.sources import csi_pipeline, file_pipeline, rtsp_pipeline

    tail = ["video/x-raw, format=BGRx", "videoconvert", "video/x-raw, format=BGR"]
    rtsp = rtsp_pipeline("rtsp://cam.local:8554/live").split(" ! ")
    assert rtsp == JETSON_UTILS_RTSP + tail + ["appsink sync=false drop=true max-buffers=1"]
    h265 = rtsp_pipeline("rtsp://cam.local:8554/live", "h265").split(" ! ")
    assert h265[2:4] == ["rtph265depay", "h265parse"]
    mp4 = file_pipeline("clips/walk.mp4", "h264").split(" ! ")
    assert mp4 == JETSON_UTILS_MP4 + tail + ["appsink sync=false"]  # a file keeps every frame
    mkv = file_pipeline("clips/my walk.mkv", "h265").split(" ! ")
    assert mkv[:4] == ['filesrc location="clips/my walk.mkv"', "matroskademux", "queue", "h265parse"]
    assert file_pipeline("clips/walk.ts", "h264") is None  # no demuxer in jetson-utils' list
    assert csi_pipeline(0).split(" ! ")[:3] == ["nvarguscamerasrc sensor-id=0",
                                               "video/x-raw(memory:NVMM), width=1280, height=720, framerate=30/1",
                                               "nvvidconv"]


def test_sources_take_the_hardware_path_where_there_is_one_and_ffmpeg_otherwise(shared_data, monkeypatch, caplog):
    """Here (pip's OpenCV, no GStreamer) every file is FFmpeg's and doctor's reason says why. Where
    the hardware path exists, an H.264 MP4/MKV gets its pipeline (codec read from the container),
    other files keep FFmpeg, and a pipeline that does not open falls back to FFmpeg with the same
    frames."""
    import fts_edge.data.sources as sources
    from fts_edge.core.errors import SourceError

    mp4, mkv = shared_data / "real-clips" / "arm_wrestling.mp4", shared_data / "real-clips" / "asl_again.mkv"
    here = sources.decode_path(str(mp4))
    if not sources.hardware_decoding()[0]:
        assert here["decoder"] == "ffmpeg" and here["pipeline"] is None and here["why"]
    assert sources.decode_path("/dev/video0")["decoder"] is None
    with pytest.raises(SourceError, match="#codec=vp8: the hardware path takes h264 or h265"):
        sources.decode_path("rtsp://cam/live#codec=vp8")
    monkeypatch.setattr(sources, "hardware_decoding", lambda: (True, "nvv4l2decoder through GStreamer"))
    hw = sources.decode_path(str(mp4))
    assert hw["decoder"] == "hardware" and " ! qtdemux ! queue ! h264parse ! nvv4l2decoder " in hw["pipeline"]
    assert " ! matroskademux ! queue ! h264parse ! " in sources.decode_path(str(mkv))["pipeline"]
    assert sources.decode_path(str(shared_data / "vtest.avi"))["decoder"] == "ffmpeg"  # MPEG-4 part 2, not H.264
    assert "rtph265depay" in sources.decode_path("rtsp://cam/live#codec=h265")["pipeline"]
    if sources.has_gstreamer():
        pytest.skip("this OpenCV has GStreamer: the fallback below needs one without")
    with caplog.at_level("WARNING"):
        src = sources.open_source(str(mp4))
    assert "hardware-decoding pipeline did not open; decoding with FFmpeg" in caplog.text
    got = [src.read() for _ in range(5)]
    src.close()
    monkeypatch.setattr(sources, "hardware_decoding", lambda: (False, "off"))
    ref = sources.open_source(str(mp4))
    want = [ref.read() for _ in range(5)]
    ref.close()
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
