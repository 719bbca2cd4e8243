import cv2
import numpy as np
import pytest
import torch

from fts_edge.flow.evaluation import endpoint_error, known_pair, known_pairs, opencv_tvl1, photometric_error
from fts_edge.flow.pictures import flow_to_color
from fts_edge.flow.tvl1 import TVL1


def _flow(model, f1, f2):
    a = torch.tensor(f1, dtype=torch.float32)[None, None]
    b = torch.tensor(f2, dtype=torch.float32)[None, None]
    with torch.no_grad():
        return model(a, b)[0].permute(1, 2, 0).numpy()


def _shift(dx, dy, size=64, seed=0, fine=False):
    """A textured frame and its copy shifted by (dx, dy): the true flow is (dx, dy) everywhere."""
    rng = np.random.default_rng(seed)
    if fine:  # texture at the scale of a pixel or two: single-scale TV-L1 loses track past ~2 px
        f1 = cv2.GaussianBlur(rng.uniform(0, 255, (size, size)).astype(np.float32), (0, 0), 1.2)
        f1 = (f1 - f1.mean()) / f1.std() * 40 + 128
    else:
        f1 = cv2.resize(known_pair("translate", rng, size, size, magnitude=1.0)[0], (size * 2, size * 2))
        f1 = f1[size // 2: size // 2 + size, size // 2: size // 2 + size].astype(np.float32)
    a = np.float32([[1, 0, dx], [0, 1, dy]])
    shifted = cv2.warpAffine(f1, a, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return f1, shifted


def test_shapes_for_pairs_and_clips():
    m = TVL1(warps=1, iterations=2, scales=2)
    assert m(torch.rand(3, 1, 20, 24) * 255, torch.rand(3, 1, 20, 24) * 255).shape == (3, 2, 20, 24)
    assert m(torch.rand(2, 3, 5, 20, 24) * 255).shape == (2, 2, 4, 20, 24)
    with pytest.raises(ValueError, match="T >= 2"):
        m(torch.rand(1, 3, 1, 20, 24))


def test_pure_translation_recovered_within_a_tenth_of_a_pixel():
    f1, f2 = _shift(1.6, -0.7)
    f = _flow(TVL1(), f1, f2)
    inner = f[8:-8, 8:-8]
    assert abs(np.median(inner[..., 0]) - 1.6) < 0.1 and abs(np.median(inner[..., 1]) + 0.7) < 0.1
    assert np.abs(inner - [1.6, -0.7]).mean() < 0.1


def test_pyramid_follows_a_large_shift_single_scale_cannot():
    f1, f2 = _shift(6.0, 3.0, size=96, fine=True)
    err = {s: np.abs(_flow(TVL1(scales=s), f1, f2)[12:-12, 12:-12] - [6.0, 3.0]).mean() for s in (1, 8)}
    assert err[8] < 0.1 and err[1] > 2.0, err
    fast = np.abs(_flow(TVL1.fast(), f1, f2)[12:-12, 12:-12] - [6.0, 3.0]).mean()
    assert fast < 0.5, fast  # fewer iterations: coarser, still on track


def test_accuracy_on_known_fields_matches_opencv():
    pairs = list(known_pairs(1, seed=3, h=64, w=64, magnitude=6))
    ours = [endpoint_error(_flow(TVL1(), f1, f2), gt, m) for _, f1, f2, gt, m in pairs]
    ref = [endpoint_error(opencv_tvl1(f1, f2), gt, m) for _, f1, f2, gt, m in pairs]
    assert np.mean(ours) < 0.5 and np.mean(ours) < 1.2 * np.mean(ref), (ours, ref)


def test_fast_preset_on_a_real_pair(shared_data):
    a = cv2.imread(str(shared_data / "rubberwhale1.png"), cv2.IMREAD_GRAYSCALE)[100:228, 200:328]
    b = cv2.imread(str(shared_data / "rubberwhale2.png"), cv2.IMREAD_GRAYSCALE)[100:228, 200:328]
    ours = photometric_error(a, b, _flow(TVL1.fast(), a, b))
    ref = photometric_error(a, b, opencv_tvl1(a, b))
    assert ours <= 1.1 * ref and ours < 0.5 * photometric_error(a, b, np.zeros((128, 128, 2), np.float32))


def test_gradcheck_and_gradient_reaches_the_frames():
    m = TVL1(warps=1, iterations=2, scales=1, median=0, epsilon=0).double()
    g = torch.Generator().manual_seed(0)
    a = (torch.rand(1, 1, 6, 7, generator=g, dtype=torch.float64) * 255).requires_grad_()
    b = (torch.rand(1, 1, 6, 7, generator=g, dtype=torch.float64) * 255).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: m(x, y), (a, b))
    clip = (torch.rand(1, 3, 3, 16, 16) * 255).requires_grad_()
    TVL1.fast()(clip).square().mean().backward()
    assert clip.grad is not None and clip.grad.abs().sum() > 0


def test_learnable_parameters_train():
    m = TVL1(warps=1, iterations=3, scales=1, learnable=True)
    names = {n for n, _ in m.named_parameters()}
    assert {"tau", "lambda_", "theta", "k_fwd", "k_cen"} <= names
    f1, f2 = _shift(1.0, 0.0, size=32)
    m(torch.tensor(f1)[None, None], torch.tensor(f2)[None, None]).sum().backward()
    assert m.theta.grad is not None and torch.isfinite(m.theta.grad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CPU/CUDA parity needs a CUDA GPU")
def test_cpu_cuda_parity():
    f1, f2 = _shift(2.3, 1.1)
    cpu = _flow(TVL1(), f1, f2)
    m = TVL1().cuda()
    with torch.no_grad():
        gpu = m(torch.tensor(f1).cuda()[None, None], torch.tensor(f2).cuda()[None, None])[0].permute(1, 2,
                                                                                                     0).cpu().numpy()
    assert np.abs(cpu - gpu).mean() < 1e-3


def test_opencv_reference_wrapper():
    f1, f2 = _shift(2.0, 1.0)
    f = opencv_tvl1(np.dstack([f1] * 3).astype(np.uint8), np.dstack([f2] * 3).astype(np.uint8), warps=3)
    assert f.shape == (64, 64, 2) and np.abs(f[10:-10, 10:-10] - [2.0, 1.0]).mean() < 0.2
    with pytest.raises(ValueError, match="unknown DualTVL1 parameter"):
        opencv_tvl1(f1, f2, alpha=3)


def test_flow_to_color_wheel():
    f = np.zeros((4, 8, 2), np.float32)
    f[:, :4, 0] = 3.0  # right
    f[:, 4:, 0] = -3.0  # left
    pic = flow_to_color(f)
    assert pic.shape == (4, 8, 3) and pic.dtype == np.uint8
    right, left = pic[0, 0].astype(int), pic[0, 7].astype(int)
    assert right[0] > 200 and right[1] < 60 and left[0] < 60  # right is red, left its opposite (cyan)
    assert (flow_to_color(np.zeros((2, 3, 3))) == 255).all()  # (2, H, W) accepted; no motion is white


def test_flow_pictures_carry_their_colour_wheel_key():
    from fts_edge.flow.pictures import with_legend

    h, w, top = 120, 160, 4.0
    pic = with_legend(flow_to_color(np.zeros((h, w, 2), np.float32), top), top)
    d = (min(h, w) // 4) | 1
    r, cy, cx = d // 2, h - 2 - d + d // 2, w - 2 - d + d // 2

    def colour(fx, fy):
        return flow_to_color(np.array([[[fx, fy]]], np.float32), top)[0, 0].astype(int)

    # the wheel's rim in each direction has the colour of full-length flow that way (image y down)
    for (dx, dy) in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        rim = pic[cy + dy * (r - 2), cx + dx * (r - 2)].astype(int)
        assert np.abs(rim - colour(top * dx, top * dy)).max() < 40, (dx, dy, rim)
    assert (pic[cy, cx] == 255).all()  # no motion is white
    assert (pic[h - 20:, : w - d - 2] != 255).any()  # the length key is written left of the wheel
    assert (pic[:h // 2] == 255).all()  # the picture itself is untouched
    tiny = np.full((12, 12, 3), 255, np.uint8)
    assert (with_legend(tiny, 1.0) == tiny).all()  # no room: no key, rather than a smudge


def test_flow_command_writes_pictures_and_compares(shared_data, tmp_path, capsys):
    from fts_edge.cli import main

    assert main(["flow", str(shared_data / "Megamind.avi"), "--out", str(tmp_path / "pics"), "--max-frames", "3",
                 "--size", "48", "--preset", "fast", "--compare-opencv"]) == 0
    out = capsys.readouterr().out
    assert "end-point difference to OpenCV" in out
    pics = sorted((tmp_path / "pics").glob("*.png"))
    assert len(pics) == 2
    h, w = cv2.imread(str(pics[0])).shape[:2]
    assert h == 48 and w == 3 * round(48 * 720 / 528)  # frame | TVL1 flow | OpenCV flow
    assert main(["flow", str(tmp_path / "missing.avi"), "--out", str(tmp_path / "x.mp4")]) == 1


def test_bench_flow_measures_both_on_the_same_pairs(tmp_path):
    from fts_edge.bench import flow as bench_flow

    res = bench_flow.run(None, sizes=((32, 40),), repeats=1, devices=["cpu"], known_per_kind=1)
    methods = res["sizes"]["32x40"]["methods"]
    assert len(methods) == 3 and all(m["pairs_per_s"] > 0 for m in methods.values())
    assert all(m["epe_known"] < 1.0 for m in methods.values())
    path = bench_flow.save(res, tmp_path / "b.json")
    assert path.exists()


def _two_videos(folder):
    from fts_edge.data.synthetic import render_clip
    from fts_edge.data.video import write_video

    a, b = folder / "a.avi", folder / "b.avi"
    write_video(a, render_clip(0, seed=1, frames=6, height=24, width=32))
    write_video(b, render_clip(1, seed=1, frames=6, height=24, width=32))
    return a, b


def test_the_flow_store_follows_the_video_not_the_path(tmp_path):
    import os
    import shutil

    import numpy as np

    from fts_edge.data.clipspec import ClipSpec
    from fts_edge.data.datasets import VideoItem
    from fts_edge.flow.store import build_store, open_store

    spec = ClipSpec(frames=4, size=16, resize=24)
    a, b = _two_videos(tmp_path / "videos")
    store = open_store(tmp_path / "s", "fast", spec.resize, spec.stride)
    rep = build_store(store, [VideoItem(str(a), 0)], spec, "fast")
    assert rep["computed"] == 1 and store.frames(str(a)) == 6 and store.shape(str(a)) == (24, 32)
    fa = store.read(str(a), np.arange(4), 0, 0, 16)
    assert fa.shape == (3, 2, 16, 16) and fa.dtype == np.float16
    # the same video under another path (a moved dataset): found, nothing recomputed
    moved = tmp_path / "moved" / "a.avi"
    moved.parent.mkdir()
    shutil.copy(a, moved)
    again = open_store(tmp_path / "s", "fast", spec.resize, spec.stride)
    assert build_store(again, [VideoItem(str(moved), 0)], spec, "fast")["computed"] == 0
    assert np.array_equal(again.read(str(moved), np.arange(4), 0, 0, 16), fa)
    # another video written over the old path (a file replaced in place): its own flow, never the stale one
    shutil.copy(b, a)
    os.utime(a, ns=(1, 1))
    third = open_store(tmp_path / "s", "fast", spec.resize, spec.stride)
    assert build_store(third, [VideoItem(str(a), 0)], spec, "fast")["computed"] == 1
    assert not np.array_equal(third.read(str(a), np.arange(4), 0, 0, 16), fa)
    # other TV-L1 settings, another short side or stride: other files
    assert open_store(tmp_path / "s", "default", spec.resize, spec.stride).path(str(a)) != third.path(str(a))
    assert open_store(tmp_path / "s", "fast", spec.resize, 2).path(str(a)) != third.path(str(a))


def test_the_flow_store_is_built_in_shares_and_reads_without_loading_a_file(tmp_path):
    """Each process of a run computes its share of the store (rank r: every world-th video from r);
    together they cover every video once. A damaged file is computed again, not trusted."""
    import numpy as np

    from fts_edge.data.clipspec import ClipSpec
    from fts_edge.data.datasets import VideoItem
    from fts_edge.flow.store import build_store, open_store

    spec = ClipSpec(frames=4, size=16, resize=24)
    items = [VideoItem(str(p), 0) for p in _two_videos(tmp_path / "v")]
    store = open_store(tmp_path / "s", "fast", spec.resize, spec.stride)
    shares = [build_store(store, items, spec, "fast", rank=r, world=2) for r in range(2)]
    assert [r["computed"] for r in shares] == [1, 1] and all(store.has(it.path) for it in items)
    store.path(items[0].path).write_bytes(b"not npy")
    assert not store.has(items[0].path)
    assert build_store(store, items, spec, "fast")["computed"] == 1
    m = np.load(store.path(items[1].path), mmap_mode="r")
    assert isinstance(m, np.memmap)


def test_cached_flow_is_the_flow_the_teacher_computes_from_the_clip():
    """Training feeds the teacher cached flow; the table, the two-stream row and the camera feed it
    the flow its own TV-L1 layers compute from the clip. The two must be the same flow: frames
    ``stride`` apart, not consecutive flows summed over the stride (which cost the demo's teacher
    2.4 points between its training val and the table)."""
    import numpy as np
    import pytest
    import torch

    from fts_edge.data.clipspec import ClipSpec
    from fts_edge.data.synthetic import render_clip
    from fts_edge.data.transforms import clip_geometry, crop_clip, crop_flow, sample_indices
    from fts_edge.flow.store import tvl1_flow
    from fts_edge.flow.tvl1 import TVL1, to_grey
    from fts_edge.nets.models import FlowTeacher, r3d_18

    spec = ClipSpec(frames=4, size=40, resize=48, stride=3)
    frames = render_clip(2, seed=3, frames=12, height=48, width=48)
    teacher = FlowTeacher(r3d_18(4, in_channels=2, width=0.0625), spec.mean, spec.std).eval()
    flow = tvl1_flow(TVL1.fast(), frames, spec.stride).astype(np.float16)  # what the store holds
    assert flow.shape == (12, 2, 48, 48)
    # entry t is frame t -> frame t + stride, wrapping as sample_indices loops a short video
    grey = to_grey(torch.from_numpy(frames).permute(0, 3, 1, 2).float())
    with torch.no_grad():
        ref = TVL1.fast()(grey[[5, 10]], grey[[8, 1]]).numpy()
    np.testing.assert_allclose(flow[[5, 10]].astype(np.float32), ref, atol=2e-2)

    (idx,) = sample_indices(len(frames), spec, "center")
    geom = clip_geometry(48, 48, spec, False, None, False)
    cached = crop_flow(flow, idx, geom, spec)
    with torch.no_grad():
        layers = teacher.flow(torch.from_numpy(crop_clip(frames[idx], geom, spec))[None])[0].numpy()
    consecutive = tvl1_flow(TVL1.fast(), frames, 1)
    summed = crop_flow(np.stack([sum(consecutive[(t + k) % 12] for k in range(spec.stride)) for t in range(12)]),
                       idx, geom, spec)
    inner = (slice(None), slice(None), slice(6, -6), slice(6, -6))  # the crop's border sees other pixels
    err, err_summed = (np.abs(f - layers)[inner].mean() for f in (cached, summed))
    size = np.abs(layers)[inner].mean()
    assert err < 0.25 * size and err < 0.5 * err_summed, (err, err_summed, size)
    with pytest.raises(ValueError, match="not 3 apart"):  # flow of another video's length is refused
        crop_flow(flow[:10], idx, geom, spec)


def test_data_flow_fills_the_store_a_training_run_reads_and_resumes(tmp_path, capsys):
    """`fts-edge data flow` computes every video's flow into the store the scripts' default looks
    in (<out>/../flow_cache); a second run computes nothing and leaves the files as they were."""
    import os

    from fts_edge.cli import main
    from fts_edge.data.synthetic import write_motion_dataset
    from fts_edge.train.config import TrainConfig
    from fts_edge.train.loop import flow_store

    write_motion_dataset(tmp_path / "d", 2, 0, 3, 8, 24, 32)
    args = ["data", "flow", "--dataset", "synthetic", "--root", str(tmp_path / "d"), "--frames", "4", "--size", "16",
            "--resize", "24", "--flow-preset", "fast", "--store", str(tmp_path / "runs" / "flow_cache")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("flow of 6 videos in ")
    cfg = TrainConfig.from_settings({"dataset": "synthetic", "root": str(tmp_path / "d"), "frames": 4, "size": 16,
                                     "resize": 24, "flow_preset": "fast", "role": "teacher",
                                     "out": str(tmp_path / "runs" / "teacher")})
    store, index = flow_store(cfg), cfg.index()
    videos = [it.path for it in index.train + index.test]
    assert len(videos) == 6 and all(store.has(v) for v in videos)
    stamps = {v: os.stat(store.path(v)).st_mtime_ns for v in videos}
    assert main(args) == 0 and "flow of 6 videos" in capsys.readouterr().out
    assert {v: os.stat(store.path(v)).st_mtime_ns for v in videos} == stamps


# -- what breaks brightness constancy: a moving camera, changing light ------------------------------------
def _scene_epe(kind, camera, illumination, truth, n=3):
    from fts_edge.flow.evaluation import scene_pair

    rng = np.random.default_rng(5)
    solver = TVL1.preset("fast", camera=camera, illumination=illumination)
    errs = []
    for _ in range(n):
        f1, f2, flow, obj, mask = scene_pair(kind, rng, 80, 80)
        with torch.no_grad():
            u = solver(torch.tensor(f1, dtype=torch.float32)[None, None],
                       torch.tensor(f2, dtype=torch.float32)[None, None])[0].permute(1, 2, 0).numpy()
        errs.append(endpoint_error(u, obj if truth == "object" else flow, mask))
    return float(np.mean(errs))


def test_camera_removal_leaves_the_objects_motion():
    """With the camera moving, plain TV-L1 reports the camera's motion everywhere; with the median
    or the affine fit removed, what is left is the object's motion in the scene."""
    plain = _scene_epe("camera", "none", "none", "object")
    assert plain > 1.0 and _scene_epe("camera", "none", "none", "full") < 0.3  # right flow, wrong question
    for camera in ("median", "affine"):
        assert _scene_epe("camera", camera, "none", "object") < 0.3 < plain / 3


def test_illumination_options_survive_a_brightness_change():
    """Frame 2 up to 15% brighter or darker: brightness constancy fails and plain TV-L1 is off by
    pixels; per-frame normalisation and the structure-texture decomposition recover the flow, and
    with the camera removed as well the object's motion under both nuisances."""
    plain = _scene_epe("light", "none", "none", "full")
    assert plain > 1.5
    for illumination in ("normalize", "structure_texture"):
        assert _scene_epe("light", "none", illumination, "full") < 0.4
    assert _scene_epe("camera+light", "affine", "normalize", "object") < 0.4


def test_the_options_key_the_store_and_leave_the_plain_solver_as_it_was():
    """The solver's text keys the flow store: unchanged without options (stores made before stay
    valid), different with each option."""
    from fts_edge.flow.store import open_store

    assert repr(TVL1.preset("fast")) == ("TVL1(tau=0.25, lambda=0.15, theta=0.3, warps=2, iterations=15, scales=3, "
                                         "scale_step=0.5, median=3, epsilon=0.0)")
    tags = {open_store("s", "fast", 128, 1, c, i).tag for c in ("none", "median", "affine")
            for i in ("none", "normalize", "structure_texture")}
    assert len(tags) == 9
    with pytest.raises(ValueError, match="camera must be one of"):
        TVL1.preset("fast", camera="homography")
