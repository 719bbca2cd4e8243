"""The streaming student: a causal network stepped frame by frame gives the clip's logits, in
PyTorch and as an ONNX stepping graph in ONNX Runtime; it trains with the paper's loss."""
import json

import numpy as np
import pytest
import torch

from fts_edge.models import create_model


def _net(window=6, width=0.125, classes=5, seed=0):
    torch.manual_seed(seed)
    net = create_model("causal_r3d_18", classes, width=width, window=window).eval()
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():  # trained-looking batch statistics, so BatchNorm is not the identity
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return net


def _step_through(net, clip):
    state = net.init_state(clip.shape[0], clip.shape[-1])
    outs = []
    with torch.no_grad():
        for t in range(clip.shape[2]):
            logits, *state = net.step(clip[:, :, t:t + 1], *state)
            outs.append(logits)
    return outs


def test_stepping_a_clip_frame_by_frame_gives_the_clips_logits():
    net = _net(window=6)
    clip = torch.randn(2, 3, 6, 32, 32)
    with torch.no_grad():
        ref = net(clip)
    got = _step_through(net, clip)[-1]
    assert torch.allclose(got, ref, rtol=0, atol=1e-4 * ref.abs().max().item())
    # on a longer stream, the logits at every frame from the window on are those of the clip ending
    # there *with the stream's past*: the causal network is the same function, only run incrementally
    long = torch.randn(1, 3, 10, 32, 32)
    steps = _step_through(net, long)
    with torch.no_grad():
        feats = net.stem(long)
        for name in ("layer1", "layer2", "layer3", "layer4"):
            feats = getattr(net, name)(feats)
        per_frame = feats.mean((3, 4))
    for t in range(5, 10):
        want = net.fc(per_frame[:, :, t - 5:t + 1].mean(2))
        assert torch.allclose(steps[t], want, atol=1e-4 * want.abs().max().item()), t


def test_the_output_at_a_frame_never_reads_a_later_frame():
    net = _net(window=4)
    a = torch.randn(1, 3, 8, 32, 32)
    b = a.clone()
    b[:, :, 5:] = torch.randn(1, 3, 3, 32, 32)  # change the future of frame 4
    with torch.no_grad():
        fa, fb = net.forward_features(a[:, :, :5]), net.forward_features(b[:, :, :5])
        sa, sb = _step_through(net, a)[4], _step_through(net, b)[4]
    assert torch.equal(fa, fb) and torch.allclose(sa, sb, atol=0)
    assert net.step.__doc__ and len(net.init_state(1, 32)) == len(net.state_shapes(1, 32))
    assert all(len(s) == 5 for s in net.state_shapes(1, 32))  # 5-D states, as TensorRT and ONNX Runtime take them


def test_the_stepping_onnx_graph_matches_pytorch_frame_by_frame(tmp_path):
    import onnx

    from fts_edge.checkpoint import make_checkpoint, save_checkpoint
    from fts_edge.clipspec import ClipSpec
    from fts_edge.onnxrt import ort_session
    from fts_edge.streaming_onnx import export_streaming_onnx, stepped_logits

    spec = ClipSpec(frames=6, size=32, resize=36)
    net = _net(window=6)
    ckpt = save_checkpoint(tmp_path / "s.pt", make_checkpoint(
        net, "student", spec, [f"c{i}" for i in range(5)],
        {"model": "causal_r3d_18", "width": 0.125, "num_classes": 5, "in_channels": 3, "window": 6}))
    clips = np.random.default_rng(0).standard_normal((3, 3, 6, 32, 32)).astype(np.float32)
    rep = export_streaming_onnx(ckpt, tmp_path / "s.onnx", parity_clips=clips)
    assert rep["parity"]["max_rel_diff"] < 1e-4 and rep["parity"]["top1_agreement"] == 1.0
    meta = json.loads((tmp_path / "s.onnx.json").read_text())
    stream = meta["streaming"]
    assert stream["window"] == 6 and stream["state_shapes"] == [list(s) for s in net.state_shapes(1, 32)]
    g = onnx.load(str(tmp_path / "s.onnx")).graph
    assert [i.name for i in g.input] == ["frame", *stream["state_inputs"]]
    assert [o.name for o in g.output] == ["logits", *stream["state_outputs"]]
    with torch.no_grad():
        ref = net(torch.from_numpy(clips)).numpy()
    got = stepped_logits(ort_session(tmp_path / "s.onnx", ["CPUExecutionProvider"]), clips, stream)
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()


def test_a_clip_network_refuses_to_stream():
    net = create_model("r3d_18", 3, width=0.125)
    with pytest.raises(ValueError, match="only a causal network"):
        net.state_shapes(1, 32)


def test_a_causal_student_distils_from_the_clip_teacher_and_exports_its_stepping_graph(tiny_run, tmp_path):
    """`--model causal_r3d_18`: the same teacher, loss, hint and start from the teacher's blocks (the
    layers' shapes are the clip network's); `fts-edge export` then writes the stepping graph."""
    from conftest import TINY

    from fts_edge.checkpoint import load_checkpoint
    from fts_edge.cli import main
    from fts_edge.training import TrainConfig, fit

    out = tmp_path / "causal"
    res = fit(TrainConfig.from_settings(dict(role="student", model="causal_r3d_18", teacher=str(tiny_run["teacher"]),
                                             hint="layer3", init_from_teacher=True, out=str(out), **TINY)))
    assert res["epochs"] == TINY["epochs"]
    ck = load_checkpoint(out / "last.pt")
    assert ck["arch"]["model"] == "causal_r3d_18" and ck["arch"]["window"] == TINY["frames"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(r["train_mse"] > 0 for r in rows)  # the mimic term was really computed
    assert main(["export", str(out / "last.pt"), "--out", str(tmp_path / "e" / "student.onnx")]) == 0
    meta = json.loads((tmp_path / "e" / "student.onnx.json").read_text())
    assert meta["streaming"]["window"] == TINY["frames"] and meta["parity"]["max_rel_diff"] < 1e-4


def test_bench_stream_times_a_frame_against_a_window_side_by_side(tmp_path, capsys):
    from fts_edge.cli import main

    assert main(["bench", "stream", "--widths", "0.125", "--frames", "6", "--size", "32", "--classes", "4",
                 "--runs", "2", "--warmup", "1", "--no-two-stream", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "bench_stream.json").read_text())
    t = res["timings"]
    assert set(t) == {"window recompute fp32 (per window)", "window recompute int8 (per window)",
                      "streaming fp32 (per frame)", "streaming int8 (per frame)"}
    assert t["streaming fp32 (per frame)"]["runs"] == 20 and t["window recompute fp32 (per window)"]["runs"] == 2
    for p in ("fp32", "int8"):
        want = t[f"streaming {p} (per frame)"]["median_ms"] / t[f"window recompute {p} (per window)"]["median_ms"]
        assert res["frame_over_window"][p] == pytest.approx(want)
    assert res["input"] == [1, 3, 6, 32, 32] and res["state_tensors"] == 18
    assert "a streaming frame costs" in capsys.readouterr().out


def _motion_video(path, frames: int, seed: int, size: int = 48):
    """A real video file of rendered motion (a file, not a live source: the camera drops nothing)."""
    import cv2

    from fts_edge.sources import SyntheticSource

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (size, size))
    for f in SyntheticSource("synthetic://", seed=seed, size=size, max_frames=frames).frames():
        writer.write(f)
    writer.release()
    return path


def _streaming_onnx(tmp_path, window=6, size=32, classes=5):
    from fts_edge.checkpoint import make_checkpoint, save_checkpoint
    from fts_edge.clipspec import ClipSpec
    from fts_edge.streaming_onnx import export_streaming_onnx

    spec = ClipSpec(frames=window, size=size, resize=size + 4)
    net = _net(window=window, classes=classes)
    ckpt = save_checkpoint(tmp_path / "s.pt", make_checkpoint(
        net, "student", spec, [f"c{i}" for i in range(classes)],
        {"model": "causal_r3d_18", "width": 0.125, "num_classes": classes, "in_channels": 3, "window": window}))
    clips = np.random.default_rng(1).standard_normal((2, 3, window, size, size)).astype(np.float32)
    export_streaming_onnx(ckpt, tmp_path / "s.onnx", parity_clips=clips)
    return net, tmp_path / "s.onnx"


def test_the_runtime_streams_per_source_and_scores_whole_clips_like_a_clip_model(tmp_path):
    from fts_edge.runtime import load_classifier

    net, onnx_path = _streaming_onnx(tmp_path)
    clf = load_classifier(onnx_path)
    assert clf.streaming and clf.window == 6 and "streaming over 6 frames" in clf.describe()
    clips = np.random.default_rng(2).standard_normal((3, 3, 6, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(clips)).numpy()
    assert np.abs(clf.predict_logits(clips) - ref).max() <= 1e-4 * np.abs(ref).max()
    # two sources interleaved, each with its own state: the same logits as each alone
    for t in range(6):
        got = clf.step_logits(clips[:2, :, t:t + 1], ["a", "b"])
        assert clf.warm("a") == (t == 5)
    assert np.abs(got - ref[:2]).max() <= 1e-4 * np.abs(ref).max()


def test_the_camera_steps_a_streaming_student_on_every_frame(tmp_path):
    from fts_edge.camera import run

    _, onnx_path = _streaming_onnx(tmp_path)
    video = _motion_video(tmp_path / "clip.avi", frames=20, seed=3)
    lines = tmp_path / "cam.jsonl"
    summary = run([str(video)], str(onnx_path), stride=5, json_out=str(lines))
    rows = [json.loads(line) for line in lines.read_text().splitlines()]
    assert rows[0]["streaming"] is True and rows[0]["every"] == 1  # every frame, whatever --every said
    s = summary["sources"][0]
    assert s["frames"] == 20 and s["windows"] == 20 and s["dropped_windows"] == 0  # a file waits for the model
    # one step per frame; a label on every frame from the 6th (the window) on
    assert [r["frame"] for r in rows if r["type"] == "prediction"] == list(range(5, 20))
    assert summary["classifications"] == 15
    jsonschema = pytest.importorskip("jsonschema")
    from pathlib import Path
    schema = json.loads((Path(__file__).resolve().parents[1] / "docs" / "camera-jsonl.schema.json").read_text())
    for r in rows:  # the streaming camera's rows are the documented ones
        jsonschema.validate(r, schema)


def test_build_engine_quantizes_the_stepping_graph_and_says_it_builds_no_engine_of_it(tmp_path, capsys):
    from fts_edge.cli import main
    from fts_edge.runtime import load_classifier

    _, onnx_path = _streaming_onnx(tmp_path)
    video = _motion_video(tmp_path / "calib.avi", frames=40, seed=4)
    args = ["build-engine", str(onnx_path), "--int8", "--calib-input", str(video), "--calib-clips", "4",
            "--min-agreement", "0"]
    assert main(args + ["--onnx-only"]) == 0
    for name in ("s.int8.cpu.onnx", "s.int8.onnx"):
        meta = json.loads((tmp_path / (name + ".json")).read_text())
        assert meta["streaming"]["window"] == 6 and meta["quantization"]["check"]["clips"] >= 4
        clf = load_classifier(tmp_path / name)
        assert clf.streaming and clf.predict_logits(np.zeros((1, 3, 6, 32, 32), np.float32)).shape == (1, 5)
    capsys.readouterr()
    assert main(args) == 1  # no TensorRT engine of a stepping graph, said in one line
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "stepping graph" in err and "s.int8.cpu.onnx" in err
