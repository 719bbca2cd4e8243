"""The streaming student: a causal network stepped frame by frame gives the clip's logits, in
PyTorch and as an ONNX stepping graph in ONNX Runtime; it trains with the paper's loss."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fts_edge.device.streamplan import LATENCY, schedule
from fts_edge.nets.models import create_model


def _net(window=6, width=0.125, classes=5, seed=0):
    torch.manual_seed(seed)
    net = create_model("causal_r3d_18", classes, width=width, window=window).eval()
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():  # trained-looking batch statistics, so BatchNorm is not the identity
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return net


def _step_through(net, frames):
    """Step a stream (N, 3, T, H, W) frame by frame from the zero state: the logits after each step
    (None before layer4 first emits)."""
    state, outs = net.init_state(frames.shape[0], frames.shape[-1]), []
    with torch.no_grad():
        for n in range(frames.shape[2]):
            logits, state = net.step(frames[:, :, n:n + 1], state, n)
            outs.append(logits)
    return outs


@pytest.mark.parametrize("window", [6, 8, 9])
def test_stepping_a_clip_frame_by_frame_gives_the_clips_logits(window):
    net = _net(window=window)
    clip = torch.randn(2, 3, window, 32, 32)
    with torch.no_grad():
        ref = net(clip)
    # the clip, then LATENCY more frames (anything: no emitted logit reads them)
    got = _step_through(net, torch.cat([clip, torch.randn(2, 3, LATENCY, 32, 32)], 2))
    assert torch.allclose(got[-1], ref, rtol=0, atol=1e-4 * ref.abs().max().item())
    assert got[window - 2 + LATENCY] is None or not torch.allclose(got[window - 2 + LATENCY], ref)


def test_on_a_long_stream_each_emission_is_the_clip_network_on_the_stream_so_far():
    net = _net(window=9)
    stream = torch.randn(1, 3, 30, 32, 32)
    steps = _step_through(net, stream)
    emitted = [n for n in range(30) if schedule(n, 9) == 3]
    assert emitted == [4, 12, 20, 28]  # layer4 once every 8 frames, 4 frames after the frame it is for
    with torch.no_grad():
        for n in emitted[1:]:  # from the first whole clip on (step window - 1 + LATENCY)
            want = net(stream[:, :, :n - LATENCY + 1])
            assert torch.allclose(steps[n], want, atol=1e-4 * want.abs().max().item()), n
            if n + 1 < 30:  # nothing new until layer4 runs again (the runtime holds the last logits)
                assert steps[n + 1] is None


def test_a_step_runs_the_frame_stage_and_at_most_one_more():
    for window in (6, 8, 25):
        runs = [schedule(n, window) for n in range(64)]
        steady = runs[16:48]  # four cycles of 8
        assert steady.count(1) == 16 and steady.count(2) == 8 and steady.count(3) == 4 and steady.count(None) == 4
        assert runs[window - 1 + 1] == 1 and runs[window - 1 + 2] == 2 and runs[window - 1 + 4] == 3


def test_a_mean_step_costs_under_a_twelfth_of_a_window_at_the_papers_geometry():
    from fts_edge.nets.models import count_macs, stream_macs

    torch.manual_seed(0)
    causal = create_model("causal_r3d_18", 51, width=0.25, window=25).eval()
    window = count_macs(create_model("r3d_18", 51, width=0.25), (1, 3, 25, 112, 112))
    macs = stream_macs(causal, 112)
    assert macs["mean step"] <= window / 12
    worst = macs["frame stage"] + max(macs[f"layer{k} stage"] for k in (2, 3, 4))
    assert worst <= window / 12  # no step runs more than the frame stage and one deeper stage


def test_the_output_at_a_frame_never_reads_a_later_frame():
    net = _net(window=8)
    a = torch.randn(1, 3, 16, 32, 32)
    b = a.clone()
    b[:, :, 9:] = torch.randn(1, 3, 7, 32, 32)  # change the future of frame 8
    with torch.no_grad():
        fa, fb = net.forward_features(a[:, :, :9]), net.forward_features(b[:, :, :9])
    sa, sb = _step_through(net, a), _step_through(net, b)
    assert torch.equal(fa, fb)
    for n in range(9 + LATENCY):  # everything emitted up to frame 8's logits
        assert (sa[n] is None and sb[n] is None) or torch.equal(sa[n], sb[n]), n
    spec = net.state_spec(1, 32)
    assert all(len(shape) == 5 for _, shape, _ in spec)  # 5-D states, as TensorRT and ONNX Runtime take them
    assert set(net.init_state(1, 32)) == {name for name, _, _ in spec}


def _export(tmp_path, window=6, size=32, classes=5, name="s.onnx", clips=None):
    from fts_edge.data.clipspec import ClipSpec
    from fts_edge.export.streaming import export_streaming_onnx
    from fts_edge.nets.checkpoint import make_checkpoint, save_checkpoint

    spec = ClipSpec(frames=window, size=size, resize=size + 4)
    net = _net(window=window, classes=classes)
    ckpt = save_checkpoint(tmp_path / "s.pt", make_checkpoint(
        net, "student", spec, [f"c{i}" for i in range(classes)],
        {"model": "causal_r3d_18", "width": 0.125, "num_classes": classes, "in_channels": 3, "window": window}))
    if clips is None:
        clips = np.random.default_rng(1).standard_normal((2, 3, window, size, size)).astype(np.float32)
    return net, export_streaming_onnx(ckpt, tmp_path / name, parity_clips=clips)


def test_the_stage_graphs_stepped_in_onnx_runtime_match_pytorch(tmp_path):
    import onnx

    from fts_edge.device.streamplan import STAGES, onnx_stages, stage_file, stepped_logits

    clips = np.random.default_rng(0).standard_normal((3, 3, 6, 32, 32)).astype(np.float32)
    net, rep = _export(tmp_path, clips=clips)
    assert rep["parity"]["max_rel_diff"] < 1e-4 and rep["parity"]["top1_agreement"] == 1.0
    meta = json.loads((tmp_path / "s.onnx.json").read_text())
    stream = meta["streaming"]
    assert stream["window"] == 6 and stream["latency"] == LATENCY
    assert stream["state_shapes"] == {n: list(s) for n, s, _ in net.state_spec(1, 32)}
    for k, name in enumerate(STAGES):
        f = stage_file(tmp_path / "s.onnx", name)
        g = onnx.load(str(f)).graph
        ins, outs = net.stage_io(k, 1, 32)
        assert [i.name for i in g.input] == ins == stream["stages"][k]["inputs"]
        assert [o.name for o in g.output] == outs == stream["stages"][k]["outputs"]
        assert all(len(i.type.tensor_type.shape.dim) == 5 for i in g.input)
    assert [st.get("sha256") is not None for st in stream["stages"]] == [False, True, True, True]
    with torch.no_grad():
        ref = net(torch.from_numpy(clips)).numpy()
    got = stepped_logits(onnx_stages(tmp_path / "s.onnx", ["CPUExecutionProvider"]), clips, stream)
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()


def test_a_clip_network_refuses_to_stream():
    net = create_model("r3d_18", 3, width=0.125)
    with pytest.raises(ValueError, match="only a causal network"):
        net.state_spec(1, 32)


def test_a_causal_student_distils_from_the_clip_teacher_and_exports_its_stepping_graph(tiny_run, tmp_path):
    """`--model causal_r3d_18`: the clip student's teacher and loss; the start from a causal copy of
    that teacher (a causal flow network started from all its weights and trained to follow it) and
    the clip student's stem, the hint's maps from the copy; `fts-edge export` then writes the stage
    graphs."""
    from conftest import TINY

    from fts_edge.cli import main
    from fts_edge.nets.checkpoint import load_checkpoint
    from fts_edge.train.loop import TrainConfig, build_networks, fit

    copy = dict(role="teacher", model="causal_r3d_18", teacher=str(tiny_run["teacher"]), init_from_teacher=True,
                mimic="correlation", **TINY)
    net, teacher, _ = build_networks(TrainConfig.from_settings(dict(copy, out=str(tmp_path / "x"))), 4)
    assert all(torch.equal(v, teacher.backbone.state_dict()[k]) for k, v in net.backbone.state_dict().items())
    fit(TrainConfig.from_settings(dict(copy, out=str(tmp_path / "flow"))))
    rows = [json.loads(line) for line in (tmp_path / "flow" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["train_mse"] > 0 for r in rows)  # it followed the teacher's features
    start = tmp_path / "flow" / "last.pt"

    settings = dict(role="student", model="causal_r3d_18", teacher=str(tiny_run["teacher"]), init_from=str(start),
                    init_stem_from=str(tiny_run["student"]), mimic="correlation", hint="layer3", hint_from=str(start),
                    **TINY)
    net, teacher, _ = build_networks(TrainConfig.from_settings(dict(settings, out=str(tmp_path / "x"))), 4)
    flow, rgb = load_checkpoint(start)["model"], load_checkpoint(tiny_run["student"])["model"]
    sd = net.state_dict()
    assert all(torch.equal(sd[k], flow["backbone." + k]) for k in sd if not k.startswith("stem."))
    assert all(torch.equal(sd[k], rgb[k]) for k in sd if k.startswith("stem."))
    # the mimic's target is the clip teacher's pooled features; the hint's maps are the copy's
    from fts_edge.nets.checkpoint import build_from_checkpoint, load_teacher
    clip_teacher = build_from_checkpoint(load_teacher(tiny_run["teacher"])).freeze()
    copy_net = build_from_checkpoint(load_teacher(start)).freeze()
    x = torch.randn(2, 2, TINY["frames"] - 1, TINY["size"], TINY["size"])
    with torch.no_grad():
        f, maps = teacher.forward_flow_features_and_maps(x, ("layer3",))
        assert torch.equal(f, clip_teacher.forward_flow_features(x))
        assert torch.equal(maps[0], copy_net.forward_flow_features_and_maps(x, ("layer3",))[1][0])
        assert not torch.allclose(maps[0], clip_teacher.forward_flow_features_and_maps(x, ("layer3",))[1][0])

    out = tmp_path / "causal"
    res = fit(TrainConfig.from_settings(dict(settings, out=str(out))))
    assert res["epochs"] == TINY["epochs"]
    ck = load_checkpoint(out / "last.pt")
    assert ck["arch"]["model"] == "causal_r3d_18" and ck["arch"]["window"] == TINY["frames"]
    assert ck["config"]["init_from"] == str(start) and ck["config"]["teacher"] == str(tiny_run["teacher"])
    assert ck["config"]["hint_from"] == str(start) and ck["config"]["hint"] == "layer3"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(r["train_mse"] > 0 for r in rows)  # the mimic term was really computed
    assert main(["export", str(out / "last.pt"), "--out", str(tmp_path / "e" / "student.onnx")]) == 0
    meta = json.loads((tmp_path / "e" / "student.onnx.json").read_text())
    assert meta["streaming"]["window"] == TINY["frames"] and meta["parity"]["max_rel_diff"] < 1e-4


def test_init_from_refuses_a_network_of_other_layers_or_a_second_start(tiny_run):
    """A clip network's blocks for a causal student, an RGB network, or two starting points: one line."""
    from conftest import TINY

    from fts_edge.train.loop import TrainConfig

    with pytest.raises(ValueError, match="--init-from sets a student's starting weights"):
        TrainConfig.from_settings(
            dict(
                role="student",
                teacher=str(tiny_run["teacher"]),
                init_from=str(tiny_run["teacher"]),
                init_from_teacher=True,
                **TINY,
            )
        )
    from fts_edge.core.errors import CheckpointError
    from fts_edge.train.loop import build_networks

    settings = dict(role="student", model="causal_r3d_18", teacher=str(tiny_run["teacher"]), **TINY)
    with pytest.raises(CheckpointError, match=r"--init-from needs a flow network built as the student is "
                                              r"\(causal_r3d_18"):
        build_networks(TrainConfig.from_settings(dict(settings, init_from=str(tiny_run["teacher"]))), 4)
    with pytest.raises(CheckpointError, match="--init-from needs a flow-teacher checkpoint"):
        build_networks(TrainConfig.from_settings(dict(settings, init_from=str(tiny_run["student"]))), 4)
    with pytest.raises(CheckpointError, match="--init-stem-from needs an RGB network"):
        build_networks(TrainConfig.from_settings(dict(settings, init_stem_from=str(tiny_run["teacher"]))), 4)


def test_hint_from_leaves_the_start_from_the_teacher_as_it_is(tiny_run):
    """--hint-from changes where the hint maps come from, nothing else: a clip student with
    --init-from-teacher still starts from the teacher's blocks."""
    from conftest import TINY

    from fts_edge.train.loop import TrainConfig, build_networks

    settings = dict(role="student", teacher=str(tiny_run["teacher"]), init_from_teacher=True, hint="layer3", **TINY)
    plain, teacher, _ = build_networks(TrainConfig.from_settings(settings), 4)
    hinted, _, _ = build_networks(TrainConfig.from_settings(dict(settings, hint_from=str(tiny_run["teacher"]))), 4)
    blocks = {k: v for k, v in teacher.backbone.state_dict().items() if not k.startswith("stem.")}
    for net in (plain, hinted):
        sd = net.state_dict()
        assert all(torch.equal(sd[k], v) for k, v in blocks.items())


def test_hint_from_refuses_maps_laid_out_otherwise_or_no_hint(tiny_run):
    """--hint-from without --hint, a clip network's maps for a causal student, an RGB network: one line."""
    from conftest import TINY

    from fts_edge.core.errors import CheckpointError
    from fts_edge.train.loop import TrainConfig, build_networks

    settings = dict(role="student", model="causal_r3d_18", teacher=str(tiny_run["teacher"]), **TINY)
    with pytest.raises(ValueError, match="--hint-from names where the --hint maps come from"):
        TrainConfig.from_settings(dict(settings, hint_from=str(tiny_run["teacher"])))
    with pytest.raises(CheckpointError, match=r"--hint-from needs a flow network built as the student is "
                                              r"\(causal_r3d_18"):
        build_networks(TrainConfig.from_settings(dict(settings, hint="layer3", hint_from=str(tiny_run["teacher"]))), 4)
    with pytest.raises(CheckpointError, match="--hint-from needs a flow-teacher checkpoint"):
        build_networks(TrainConfig.from_settings(dict(settings, hint="layer3", hint_from=str(tiny_run["student"]))), 4)


def test_bench_stream_times_a_frame_against_a_window_side_by_side(tmp_path, capsys):
    from fts_edge.cli import main

    assert main(["bench", "stream", "--widths", "0.125", "--frames", "6", "--size", "32", "--classes", "4",
                 "--runs", "2", "--warmup", "1", "--no-two-stream", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "bench_stream.json").read_text())
    t = res["timings"]
    assert set(t) == {f"{what} {p} ({per})" for p in ("fp32", "int8") for what, per in (
        ("window recompute", "per window"), ("streaming", "per frame"), ("streaming", "mean frame of a cycle"))}
    # single steps over whole cycles of 8 (every phase as often as a stream meets it), side by side
    assert t["streaming fp32 (per frame)"]["runs"] == 32 and t["window recompute fp32 (per window)"]["runs"] == 2
    for p in ("fp32", "int8"):
        window = t[f"window recompute {p} (per window)"]["median_ms"]
        mean_frame = t[f"streaming {p} (mean frame of a cycle)"]["median_ms"]
        assert res["frame_over_window"][p] == pytest.approx(mean_frame / window)
        assert res["worst_frame_over_window"][p] == pytest.approx(t[f"streaming {p} (per frame)"]["p99_ms"] / window)
    assert res["input"] == [1, 3, 6, 32, 32] and res["state_tensors"] == 20 and res["latency_frames"] == LATENCY
    assert res["gmacs"]["streaming mean step"] < res["gmacs"]["window"]
    assert "a streaming frame costs" in capsys.readouterr().out


def _motion_video(path, frames: int, seed: int, size: int = 48):
    """A real video file of rendered motion (a file, not a live source: the camera drops nothing)."""
    import cv2

    from fts_edge.data.sources import SyntheticSource

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (size, size))
    for f in SyntheticSource("synthetic://", seed=seed, size=size, max_frames=frames).frames():
        writer.write(f)
    writer.release()
    return path


def _streaming_onnx(tmp_path, window=6, size=32, classes=5):
    net, rep = _export(tmp_path, window, size, classes)
    return net, Path(rep["onnx"])


def test_the_runtime_streams_per_source_and_scores_whole_clips_like_a_clip_model(tmp_path):
    from fts_edge.device.runtime import load_classifier

    net, onnx_path = _streaming_onnx(tmp_path)
    clf = load_classifier(onnx_path)
    _streams_like_pytorch(clf, net)


def _streams_like_pytorch(clf, net):
    assert clf.streaming and clf.window == 6 and "a clip of 6 frames" in clf.describe()
    clips = np.random.default_rng(2).standard_normal((3, 3, 6, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(clips)).numpy()
    assert np.abs(clf.predict_logits(clips) - ref).max() <= 1e-4 * np.abs(ref).max()
    # two sources interleaved, each with its own state: the same logits as each alone
    frames = np.concatenate([clips[:2], np.zeros((2, 3, LATENCY, 32, 32), np.float32)], 2)
    for t in range(6 + LATENCY):
        got = clf.step_logits(frames[:, :, t:t + 1], ["a", "b"])
        assert clf.warm("a") == (t == 5 + LATENCY)
    assert np.abs(got - ref[:2]).max() <= 1e-4 * np.abs(ref).max()


def test_the_camera_steps_a_streaming_student_on_every_frame(tmp_path):
    from fts_edge.live.camera import CameraSettings, run

    _, onnx_path = _streaming_onnx(tmp_path)
    video = _motion_video(tmp_path / "clip.avi", frames=20, seed=3)
    lines = tmp_path / "cam.jsonl"
    summary = run(CameraSettings.make(model=str(onnx_path), inputs=[str(video)], every=5, json_out=str(lines)))
    rows = [json.loads(line) for line in lines.read_text().splitlines()]
    assert rows[0]["streaming"] is True and rows[0]["every"] == 1  # every frame, whatever --every said
    s = summary["sources"][0]
    assert s["frames"] == 20 and s["windows"] == 20 and s["dropped_windows"] == 0  # a file waits for the model
    # one step per frame; a label on every frame from the first whole clip's logits on
    assert [r["frame"] for r in rows if r["type"] == "prediction"] == list(range(5 + LATENCY, 20))
    assert summary["classifications"] == 15 - LATENCY
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).resolve().parents[1] / "docs" / "camera-jsonl.schema.json").read_text())
    for r in rows:  # the streaming camera's rows are the documented ones
        jsonschema.validate(r, schema)


def _without_times(rows):
    drop = ("time", "latency_ms", "inference_ms", "seconds", "classifications_per_s", "duration_s")
    out = []
    for r in rows:
        r = {k: v for k, v in r.items() if k not in drop}
        if r["type"] == "summary":
            r.pop("inference_ms_p50")
        out.append(r)
    return out


@pytest.mark.parametrize("which", ["streaming", "clip"])
def test_a_file_gives_the_same_json_lines_every_run(tmp_path, tiny_run, shared_data, which):
    """A file is not a live camera: every run steps the same frames in the same order and prints
    the same numbers (times aside), with --max-windows too."""
    from fts_edge.cli import main

    model = _streaming_onnx(tmp_path)[1] if which == "streaming" else tiny_run["onnx"]
    runs = []
    for i in range(3):
        out = tmp_path / f"run{i}.jsonl"
        assert main(["camera", "--input", str(shared_data / "vtest.avi"), "--model", str(model), "--every", "2",
                     "--max-windows", "40", "--json-out", str(out)]) == 0
        runs.append(_without_times(json.loads(line) for line in out.read_text().splitlines()))
    assert runs[0] == runs[1] == runs[2]
    summary = runs[0][-1]
    assert summary["classifications"] == 40 and summary["sources"][0]["dropped_windows"] == 0
    last = [r for r in runs[0] if r["type"] == "prediction"][-1]
    assert summary["sources"][0]["frames"] == last["frame"] + 1  # read up to the last window, not beyond


def test_build_engine_quantizes_each_stage_and_the_runtime_checks_every_file(tmp_path):
    from fts_edge.cli import main
    from fts_edge.core.errors import CheckpointError
    from fts_edge.device.runtime import load_classifier
    from fts_edge.device.streamplan import STAGES, stage_file

    _, onnx_path = _streaming_onnx(tmp_path)
    video = _motion_video(tmp_path / "calib.avi", frames=40, seed=4)
    assert main(["build-engine", str(onnx_path), "--int8", "--fp16", "--calib-input", str(video), "--calib-clips", "4",
                 "--min-agreement", "0", "--onnx-only"]) == 0
    fp16 = load_classifier(tmp_path / "s.fp16.onnx")  # every stage in fp16, for CUDA runtimes
    assert fp16.streaming and fp16.predict_logits(np.zeros((1, 3, 6, 32, 32), np.float32)).shape == (1, 5)
    for name in ("s.int8.cpu.onnx", "s.int8.onnx"):
        meta = json.loads((tmp_path / (name + ".json")).read_text())
        q = meta["quantization"]
        assert meta["streaming"]["window"] == 6 and q["check"]["clips"] >= 4
        assert set(q["stages"]) == set(STAGES) and all(st["qdq"]["QuantizeLinear"] > 0 for st in q["stages"].values())
        if name == "s.int8.onnx":  # every residual Add with an identity shortcut reads a quantized copy of it
            assert [q["stages"][n]["residuals_rewired"] for n in STAGES] == [2, 1, 1, 1]
        for st in meta["streaming"]["stages"][1:]:  # each INT8 stage beside the main file, recorded by sha256
            assert stage_file(tmp_path / name, st["name"]).is_file() and len(st["sha256"]) == 64
        clf = load_classifier(tmp_path / name)
        assert clf.streaming and clf.predict_logits(np.zeros((1, 3, 6, 32, 32), np.float32)).shape == (1, 5)
    # a stage file that is not the one exported is refused, in one line
    layer3 = stage_file(onnx_path, "layer3")
    layer3.write_bytes(stage_file(tmp_path / "s.int8.cpu.onnx", "layer3").read_bytes())
    with pytest.raises(CheckpointError, match="sha256 differs"):
        load_classifier(onnx_path)
    layer3.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_classifier(onnx_path)


def test_tensorrt_engines_of_the_stages_stream_like_onnx_runtime(tmp_path, monkeypatch, capsys):
    """Through the TensorRT 10.3 stand-in (tests/standin: the documented API, the engine run by ONNX
    Runtime): build-engine builds one engine per stage with its metadata, and the TensorRT
    classifier steps them with the state in (stand-in) device memory, buffers recycled and freed.
    What TensorRT itself does with these graphs waits for a device (jetson/README.md)."""
    import importlib
    import sys

    from fts_edge.cli import main
    from fts_edge.device.runtime import load_classifier
    from fts_edge.device.streamplan import stage_file

    standin = Path(__file__).resolve().parent / "standin"
    for m in ("tensorrt", "cuda", "cuda.bindings", "cuda.bindings.runtime", "pycuda", "pycuda.driver"):
        monkeypatch.delitem(sys.modules, m, raising=False)
    monkeypatch.syspath_prepend(str(standin))
    net, onnx_path = _streaming_onnx(tmp_path)
    assert main(["build-engine", str(onnx_path), "--fp16"]) == 0
    assert "built" in capsys.readouterr().out
    engine = tmp_path / "s.fp16.engine"
    onnx_meta = json.loads((tmp_path / "s.onnx.json").read_text())
    for st in onnx_meta["streaming"]["stages"]:
        meta = json.loads((stage_file(engine, st["name"]).with_suffix(".engine.json")).read_text())
        assert meta["streaming_stage"] == st["name"] and meta["precision"] == "fp16"
        assert sorted(meta["input_names"]) == sorted(st["inputs"]) and meta["streaming"] == onnx_meta["streaming"]
    rt = importlib.import_module("cuda.bindings.runtime")
    before = rt.live_allocations()
    clf = load_classifier(engine)
    assert clf.backend == "tensorrt"
    _streams_like_pytorch(clf, net)
    held = rt.live_allocations()[0]
    for t in range(24):  # buffers are recycled: a long stream allocates nothing more
        clf.step_logits(np.zeros((2, 3, 1, 32, 32), np.float32), ["a", "b"])
    assert rt.live_allocations()[0] == held
    clf.close()
    assert rt.live_allocations() == before
    # a stage engine of another model (here: metadata that says another stage) is refused in one line
    from fts_edge.core.errors import EngineError
    layer3 = stage_file(engine, "layer3").with_suffix(".engine.json")
    meta = json.loads(layer3.read_text())
    layer3.write_text(json.dumps({**meta, "streaming_stage": "layer2"}))
    with pytest.raises(EngineError, match="not the layer3 stage"):
        load_classifier(engine)
    assert rt.live_allocations() == before  # nothing left allocated by the refusal
    for m in ("tensorrt", "cuda", "cuda.bindings", "cuda.bindings.runtime", "pycuda", "pycuda.driver"):
        sys.modules.pop(m, None)


def test_the_camera_app_script_steps_a_streaming_student_as_the_camera_command_does(tmp_path):
    """apps/camera.py with the streaming student: the classifier says it streams, so the app steps
    it one frame at a time (it cannot feed it whole windows) and gives the camera command's rows."""
    import subprocess
    import sys

    from fts_edge.cli import main

    _, onnx_path = _streaming_onnx(tmp_path)
    video = _motion_video(tmp_path / "clip.avi", frames=20, seed=3)
    app = Path(__file__).resolve().parents[1] / "apps" / "camera.py"
    r = subprocess.run([sys.executable, str(app), str(video), "--model", str(onnx_path), "--every", "5"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows[0]["streaming"] is True and rows[0]["every"] == 1
    assert [row["frame"] for row in rows if row["type"] == "prediction"] == list(range(5 + LATENCY, 20))
    lines = tmp_path / "cam.jsonl"
    assert main(["camera", "--input", str(video), "--model", str(onnx_path), "--json-out", str(lines)]) == 0
    command = [json.loads(line) for line in lines.read_text().splitlines()]
    assert _without_times(rows) == [{**r, "inputs": rows[0]["inputs"]} if r["type"] == "start" else r
                                    for r in _without_times(command)]
