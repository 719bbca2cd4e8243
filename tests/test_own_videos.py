"""Own videos handled correctly: flips off where direction is the class, the split rebuilt from the
bundle with the run's seed, and a video whose container declares more frames than decode used with
the frames that do."""
import logging

from fts_edge.data.clips import dataset_index_from_meta, validation_set
from fts_edge.data.clipspec import ClipSpec
from fts_edge.data.datasets import dataset_index, direction_pairs, folder_index
from fts_edge.data.synthetic import render_clip
from fts_edge.data.video import write_video
from fts_edge.train.data import VideoDataset


def _folder(root, classes=("swipe_left", "swipe_right", "wave"), per_class=5, frames=10):
    for ci, c in enumerate(classes):
        for i in range(per_class):
            write_video(root / c / f"{c}_{i}.avi", render_clip(ci % 10, 3, i, frames, 32, 40))
    return root


def test_direction_pairs_are_found():
    assert direction_pairs(["swipe_left", "swipe_right", "wave"]) == [("swipe_left", "swipe_right")]
    assert direction_pairs(["rotate_cw", "rotate_ccw"]) == [("rotate_ccw", "rotate_cw")]
    assert direction_pairs(["turn_clockwise", "turn_counterclockwise"]) == [("turn_clockwise", "turn_counterclockwise")]
    assert direction_pairs(["walk", "run", "left_hand_wave"]) == []


def test_flips_are_off_by_default_where_direction_is_the_class(tmp_path, caplog):
    root = _folder(tmp_path / "v")
    assert dataset_index("folder", root).flip is False
    assert dataset_index("folder", _folder(tmp_path / "w", ("walk", "run"))).flip is True
    with caplog.at_level(logging.WARNING, logger="fts_edge"):
        assert dataset_index("folder", root, flip=True).flip is True
    assert "swipe_left/swipe_right" in caplog.text and "--no-flip" in caplog.text


def test_the_split_is_rebuilt_with_the_runs_seed(tmp_path):
    """A folder dataset trained with seed 3: the INT8 check's clips (the bundle's validation split)
    hold none of its training videos; rebuilt with seed 0 they would."""
    from fts_edge.nets.checkpoint import bundle_metadata
    from fts_edge.train.loop import TrainConfig, fit

    root = _folder(tmp_path / "v", ("walk", "run", "wave"), per_class=10, frames=8)
    cfg = TrainConfig.from_settings(
        dict(
            role="rgb",
            dataset="folder",
            root=str(root),
            seed=3,
            frames=4,
            size=24,
            resize=28,
            width=0.125,
            epochs=1,
            batch_size=8,
            warmup_epochs=0,
            alpha=0.0,
            optimizer="adamw",
            lr=1e-3,
            out=str(tmp_path / "run"),
        )
    )
    fit(cfg)
    from fts_edge.nets.checkpoint import load_checkpoint
    meta = bundle_metadata(load_checkpoint(tmp_path / "run" / "last.pt"))
    assert meta["dataset"]["seed"] == 3
    trained_on = {i.path for i in folder_index(root, seed=3).train}
    checked = dataset_index_from_meta(meta).test
    assert checked and not trained_on & {i.path for i in checked}
    assert trained_on & {i.path for i in folder_index(root, seed=0).test}, "seed 0 would check on training videos"
    clips, labels = validation_set(ClipSpec(frames=4, size=24, resize=28), meta)
    assert len(clips) == len(checked)


def test_a_video_that_declares_more_frames_than_decode_is_used(tmp_path, capsys):
    from fts_edge.cli import main

    root = _folder(tmp_path / "v", ("walk", "run"), per_class=4, frames=40)
    liar = root / "walk" / "walk_0.avi"
    data = liar.read_bytes()
    liar.write_bytes(data[: len(data) // 2])  # the header still declares 40 frames
    idx = folder_index(root)
    item = next(i for i in idx.train + idx.test if i.path == str(liar))
    ds = VideoDataset([item], ClipSpec(frames=4, size=24, resize=28), mode="center")
    clip, label = ds[0]
    assert tuple(clip.shape) == (3, 4, 24, 24) and not ds.unreadable
    assert main(["data", "check", "--dataset", "folder", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"{liar}: its container declares 40 frames" in out and "decode (used with the frames that decode)" in out


def test_small_folders_say_what_is_missing_and_how_to_fix_it(tmp_path, capsys):
    from fts_edge.train.cli import train_main

    root = _folder(tmp_path / "v", ("walk", "cartoon"), per_class=1)
    assert train_main("student", ["--dataset", "folder", "--root", str(root), "--alpha", "0", "--frames", "4",
                                  "--size", "24", "--resize", "28", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "2 training and 0 validation videos" in err and "add videos" in err and err.count("\n") == 1


def test_predict_labels_files_folders_and_patterns(tiny_run, tmp_path, capsys):
    import json

    from fts_edge.cli import main

    root = _folder(tmp_path / "v", ("walk", "run"), per_class=2, frames=12)
    (root / "run" / "broken.avi").write_bytes(b"not a video")
    rc = main(["predict", str(root / "walk"), str(root / "run" / "*.avi"), "--model", str(tiny_run["onnx"]), "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert rc == 1  # one video could not be read, and its row says so
    assert len(rows) == 5 and sum("error" in r for r in rows) == 1
    classes = json.loads((tiny_run["onnx"].parent / "student.onnx.json").read_text())["classes"]
    for r in rows:
        if "error" not in r:
            assert r["label"] in classes and r["clips"] >= 1 and len(r["top"]) == 3
            assert abs(sum(t["score"] for t in r["top"])) <= 1.0001
    assert main(["predict", str(root / "walk"), "--model", str(tiny_run["onnx"]), "--csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "video,label,score,top,error" and len(lines) == 3


def torchvision_r3d_18_state_dict(num_classes=400):
    """A state dict with the parameter names and shapes of torchvision's video r3d_18
    (torchvision/models/video/resnet.py: BasicStem, BasicBlock with Conv3DSimple in
    Sequential(conv, bn, relu), downsample Sequential(conv, bn), fc), filled with random numbers."""
    import torch

    g = torch.Generator().manual_seed(0)
    sd = {}

    def bn(prefix, c):
        sd.update(
            {
                f"{prefix}.weight": torch.rand(c, generator=g),
                f"{prefix}.bias": torch.rand(c, generator=g),
                f"{prefix}.running_mean": torch.rand(c, generator=g),
                f"{prefix}.running_var": torch.rand(c, generator=g),
                f"{prefix}.num_batches_tracked": torch.tensor(7),
            }
        )

    sd["stem.0.weight"] = torch.randn(64, 3, 3, 7, 7, generator=g)
    bn("stem.1", 64)
    cin = 64
    for layer, c in zip((1, 2, 3, 4), (64, 128, 256, 512)):
        for b in (0, 1):
            first_in = cin if b == 0 else c
            sd[f"layer{layer}.{b}.conv1.0.weight"] = torch.randn(c, first_in, 3, 3, 3, generator=g)
            bn(f"layer{layer}.{b}.conv1.1", c)
            sd[f"layer{layer}.{b}.conv2.0.weight"] = torch.randn(c, c, 3, 3, 3, generator=g)
            bn(f"layer{layer}.{b}.conv2.1", c)
            if b == 0 and layer > 1:
                sd[f"layer{layer}.0.downsample.0.weight"] = torch.randn(c, cin, 1, 1, 1, generator=g)
                bn(f"layer{layer}.0.downsample.1", c)
        cin = c
    sd["fc.weight"] = torch.randn(num_classes, 512, generator=g)
    sd["fc.bias"] = torch.randn(num_classes, generator=g)
    return sd


def test_pretrained_torchvision_r3d_18_weights_load_past_the_classifier(tmp_path):
    import pytest
    import torch

    from fts_edge.core.errors import CheckpointError
    from fts_edge.nets.models import create_model
    from fts_edge.train.loop import load_pretrained

    sd = torchvision_r3d_18_state_dict()
    path = tmp_path / "r3d_18_kinetics400.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, path)  # a wrapped, DDP-style save
    student = create_model("r3d_18", 51)
    rep = load_pretrained(student, str(path))
    assert rep["skipped"] == ["fc.bias", "fc.weight"] and len(rep["loaded"]) == len(sd) - 2
    assert torch.equal(student.state_dict()["layer3.0.downsample.0.weight"], sd["layer3.0.downsample.0.weight"])
    teacher = create_model("r3d_18", 51, in_channels=2)
    rep = load_pretrained(teacher, str(path))
    assert rep["skipped"] == ["fc.bias", "fc.weight", "stem.0.weight"]
    with pytest.raises(CheckpointError, match="needs --width 1.0|at --width 1.0"):
        load_pretrained(create_model("r3d_18", 51, width=0.25), str(path))


def test_evaluate_scores_an_onnx_as_the_training_table_scores_its_checkpoint(tiny_run, tmp_path, capsys):
    import json

    from fts_edge.cli import main
    from fts_edge.train.evaluate import evaluate

    table = evaluate(None, None, str(tiny_run["student"]))
    row = table["rows"][0]
    assert main(["evaluate", str(tiny_run["onnx"]), "--json-out", str(tmp_path / "e.json")]) == 0
    rep = json.loads((tmp_path / "e.json").read_text())
    assert rep["n"] == row["n"] and abs(rep["top1"] - row["top1"]) < 1e-6 and abs(rep["top5"] - row["top5"]) < 1e-6
    assert rep["per_class_n"] == row["per_class_n"]
    assert "test clips per class" in capsys.readouterr().out


def test_train_runs_a_folder_to_a_deployable_student_and_resumes(tmp_path, capsys):
    """fts-edge train on a folder of videos, with the settings file alone (a tiny recipe): every
    stage, the report, the artifacts chained, and a second call resuming from state.json."""
    import dataclasses
    import json

    from fts_edge.cli import main
    from fts_edge.pipeline import Recipe
    from fts_edge.trainrun import TrainSettings

    root = _folder(tmp_path / "v", ("walk", "run", "wave"), per_class=6, frames=12)
    recipe = Recipe(frames=4, size=24, resize=28, stride=1, epochs=1, teacher_epochs=1, batch_size=4, width=0.125)
    cfg = tmp_path / "settings.json"
    cfg.write_text(json.dumps(TrainSettings(root=str(root), baseline=True, streaming=True, recipe=recipe).to_dict()))
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "[1/9] data" in said and "[2/9] flow" in said and "[6/9] streaming" in said and "[8/9] camera" in said
    assert "[9/9] report" in said
    assert "fts-edge predict" in said and "streaming student: top-1" in said
    assert (out / "engines" / "student.onnx").exists() and (out / "engines" / "student.int8.cpu.onnx").exists()
    saved = json.loads((out / "settings.json").read_text())
    assert saved == json.loads(cfg.read_text())  # the file alone reproduces the run
    report = (out / "report.md").read_text()
    assert "| distilled student |" in report and "| RGB |" in report and "settings.json" in report
    state = json.loads((out / "state.json").read_text())
    cam = state["stages"]["camera"]
    assert cam["classifications"] > 0 and 0.0 <= cam["accuracy"] <= 1.0
    for said_in_report in ("Seed 0.", "Chance level: 33.3 %", "- machine: ", "- versions: ", "onnxruntime ",
                           "ONNX `student.onnx` vs PyTorch", "INT8 for ONNX Runtime on a CPU `student.int8.cpu.onnx`",
                           f"{cam['classifications']} classifications, frame-to-label latency p50",
                           "of the windows", '"recipe": {', "## Streaming student"):
        assert said_in_report in report, said_in_report
    meta = json.loads((out / "engines" / "student.onnx.json").read_text())
    assert meta["dataset"]["dataset"] == "folder" and meta["dataset"]["root"] == str(root)
    assert main(["train", "--config", str(out / "settings.json"), "--out", str(out)]) == 0
    assert "already done (resumed)" in capsys.readouterr().out
    # a flag given with --config changes that setting: more epochs train on, from the stage they change
    assert main(["train", "--config", str(out / "settings.json"), "--epochs", "2"]) == 0  # the run's own folder
    said = capsys.readouterr().out
    assert "recipe.epochs 1 -> 2: training on (stages student, table, streaming, export, camera, report again)" in said
    assert json.loads((out / "settings.json").read_text())["recipe"]["epochs"] == 2
    from fts_edge.nets.checkpoint import load_checkpoint
    assert load_checkpoint(out / "student" / "last.pt")["epoch"] == 2
    assert load_checkpoint(out / "rgb" / "last.pt")["epoch"] == 2
    # fewer epochs, or an edited settings file, are refused naming each setting with both values
    assert main(["train", "--config", str(out / "settings.json"), "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert "recipe.epochs 2 (now 1); recipe.epochs can only grow" in err and err.count("\n") == 1
    other = dataclasses.replace(TrainSettings.from_file(cfg), seed=5)
    cfg.write_text(json.dumps(other.to_dict()))
    assert main(["train", "--config", str(cfg), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "holds a run with other settings: recipe.epochs 2 (now 1), seed 0 (now 5)" in err and err.count("\n") == 1
    # DATA with --config: that run's recipe on these videos, in their own folder; --preset with it is refused
    from fts_edge.cli import build_parser, train_settings
    s, where = train_settings(build_parser().parse_args(["train", str(root), "--config", str(out / "settings.json")]))
    assert s.root == str(root.resolve()) and s.recipe == TrainSettings.from_file(out / "settings.json").recipe
    assert where == str(type(root)("runs") / root.name)
    assert main(["train", str(root), "--config", str(cfg), "--preset", "paper"]) == 2
    assert "--preset and --config both give the recipe" in capsys.readouterr().err
