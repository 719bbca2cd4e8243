"""No traceback anywhere: every subcommand and training script through a table of bad inputs, each
answered by one line on stderr, the documented exit status (1: a problem the message explains,
2: bad usage) and nothing left behind (no file created or changed in the inputs' folder or the
working folder). Lying artifacts (a JSON or an embedded bundle that does not tell the truth about
the model) get the same answer from every command that runs a model."""
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import _tiny_video, lie

from fts_edge.cli import main
from fts_edge.device.bundle import metadata_path
from fts_edge.train.cli import evaluate_main, train_main

ROOT = Path(__file__).resolve().parents[1]

# Lying artifacts, each a copy of the tiny student: (file name, the lie, where it is told)
LIES = {
    "perm.onnx": (lambda m: m.update(classes=m["classes"][::-1]), "beside"),
    "mean_beside.onnx": (lambda m: m["clip_spec"].update(mean=[0.5, 0.5, 0.5]), "beside"),
    "mean_inside.onnx": (lambda m: m["clip_spec"].update(mean=[0.5, 0.5, 0.5]), "inside"),
    "fewer.onnx": (lambda m: m.update(classes=m["classes"][:-1]), "both"),
    "teacher.onnx": (lambda m: m.update(role="teacher"), "both"),
    "teacher2.onnx": (lambda m: (m.update(role="teacher"), m["arch"].update(in_channels=2)), "both"),
    "frames.onnx": (lambda m: m["clip_spec"].update(frames=8), "both"),
    "int8.onnx": (lambda m: m.update(precision="int8"), "both"),
    "dup.onnx": (lambda m: m.update(classes=[m["classes"][0]] * len(m["classes"])), "both"),
    "role.onnx": (lambda m: m.update(role="wizard"), "both"),
    "layout.onnx": (lambda m: m["clip_spec"].update(color="BGR"), "both"),
}
# What each lie is answered with, whichever command reads the model
SAYS = {
    "perm.onnx": "disagree on classes", "mean_beside.onnx": "disagree on clip_spec.mean",
    "mean_inside.onnx": "disagree on clip_spec.mean", "fewer.onnx": "has 4 outputs, its bundle names 3 classes",
    "teacher.onnx": "says role 'teacher' (it reads 2 channels) but a network of 3",
    "teacher2.onnx": "the graph takes clips (1, 3, 4, 24, 24), its bundle says (N, 2, 4, 24, 24)",
    "frames.onnx": "its bundle says (N, 3, 8, 24, 24)", "int8.onnx": "its bundle says int8 but the graph has no Q/DQ",
    "dup.onnx": "two classes have the same name", "role.onnx": "names the role 'wizard'",
    "layout.onnx": "fts-edge models take NCTHW RGB clips", "other_json.onnx": "is not the model its metadata",
    "bare.onnx": "no bundle inside the model", "cut.onnx": "not a readable ONNX model",
}


@pytest.fixture(scope="module")
def files(tiny_run, tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.pt").write_bytes(b"")
    (d / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    (d / "a_file").write_text("not a folder")
    (d / "text.avi").write_text("not a video")
    (d / "adir").mkdir()
    _tiny_video(d / "clip.avi", 1, 1, frames=16, size=40)
    _tiny_video(d / "one.avi", 1, 1, frames=1, size=40)
    for name in ["m.onnx", *LIES, "other_json.onnx", "bare.onnx"]:
        shutil.copy(tiny_run["onnx"], d / name)
        shutil.copy(metadata_path(tiny_run["onnx"]), metadata_path(d / name))
    for name, (edit, where) in LIES.items():
        lie(d / name, edit, where)
    from fts_edge.export.onnx import export_onnx
    other = export_onnx(tiny_run["student"], d / "dyn" / "other.onnx", dynamic_batch=True)["onnx"]
    shutil.copy(metadata_path(other), metadata_path(d / "other_json.onnx"))  # another model's JSON beside this one
    import onnx
    proto = onnx.load(str(d / "bare.onnx"))
    del proto.metadata_props[:]
    (d / "bare.onnx").write_bytes(proto.SerializeToString())
    metadata_path(d / "bare.onnx").unlink()
    (d / "cut.onnx").write_bytes((d / "m.onnx").read_bytes()[:2000])
    splits = d / "hmdb_splits"
    splits.mkdir()
    (splits / "jump_test_split1.txt").write_bytes(b"jump_\xff\xfe_1.avi 1 \n")
    (d / "hmdb").mkdir()
    (d / "hmdb" / "jump").mkdir()
    (splits / "wave_test_split1.txt").write_text("")
    return d


def _busy_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s, s.getsockname()[1]


SYN = ["--input", "synthetic://", "--max-windows", "1"]
M = ["--model", "{d}/m.onnx"]

# Every command that runs a model, as it is given a model: each lie is one case per command.
RUNNERS = {
    "camera": lambda m: ["camera", *SYN, "--model", m],
    "predict": lambda m: ["predict", "{d}/clip.avi", "--model", m],
    "evaluate": lambda m: ["evaluate", m, "--limit", "2"],
    "verify": lambda m: ["verify", m, "--against", "{d}/m.onnx", "--clips", "2", "--runs", "1"],
    "build-engine": lambda m: ["build-engine", m, "--int8", "--onnx-only", "--calib-clips", "2"],
    "bench": lambda m: ["bench", "--model", m, "--runs", "1", "--warmup", "0", "--out", "{tmp}/bench"],
}
LIE_CASES = [(RUNNERS[cmd]("{d}/" + name), 1, SAYS[name]) for cmd in RUNNERS
             for name in [*LIES, "other_json.onnx", "bare.onnx", "cut.onnx"]]

CLI_CASES = [
    # (argv with {d} for the files folder and {tmp} for an empty folder, exit status, what the line says)
    # camera: flags
    (["camera", *SYN, *M, "--every", "0"], 2, "--every must be at least 1"),
    (["camera", *SYN, *M, "--stride", "0"], 2, "--stride must be at least 1"),
    (["camera", *SYN, *M, "--smooth", "0"], 2, "--smooth must be at least 1"),
    (["camera", *SYN, *M, "--topk", "0"], 2, "--topk must be at least 1"),
    (["camera", *SYN, *M, "--threads", "100000"], 2, "--threads must be from 0 to 256"),
    (["camera", *SYN, *M, "--threads", "-1"], 2, "--threads must be from 0 to 256"),
    (["camera", *SYN, *M, "--on", "1.5"], 2, "--on must be from 0.0 to 1.0"),
    (["camera", *SYN, *M, "--on", "nan"], 2, "--on must be a number, got nan"),
    (["camera", *SYN, *M, "--off", "0.9"], 2, "--off must be from 0.0 to --on"),
    (["camera", *SYN, *M, "--off", "inf"], 2, "--off must be from 0.0 to 1.0"),
    (["camera", *SYN, *M, "--linger", "-1"], 2, "--linger must be from 0.0 to 3600.0"),
    (["camera", *SYN, *M, "--max-retries", "-1"], 2, "--max-retries must be at least 0"),
    (["camera", *SYN, *M, "--max-windows", "0"], 2, "--max-windows must be at least 1"),
    (["camera", *SYN, *M, "--serve", "abc"], 2, "the port must be a number"),
    (["camera", *SYN, *M, "--serve", ":99999"], 2, "the port must be a number"),
    (["camera", *SYN, *M, "--serve", "[::1]:p"], 2, "the port must be a number"),
    (["camera", *SYN, *M, "--json-out", "{d}/adir"], 2, "--json-out {d}/adir: is a folder; name a file"),
    (["camera", *SYN, *M, "--json-out", "{d}/a_file/x.jsonl"], 2, "a_file is a file, not a folder"),
    (["camera", *SYN, *M, "--output", "{d}/adir"], 1, "is a folder; name a video file"),
    (["camera", *SYN, *M, "--output", "{tmp}/x.txt"], 1, "unknown video type"),
    (["camera", *SYN, *M, "--output", "{d}/clip.avi"], 1, "exists; pass --overwrite"),
    (["camera", *SYN, *M, "--flow-dir", "{d}/a_file"], 2, "is a file; name a folder for the flow pictures"),
    (["camera", *SYN, *M, "--headless", "--display"], 2, "contradict each other"),
    (["camera", *SYN, *M, "--nonsense"], 2, "unrecognized arguments"),
    # camera: inputs
    (["camera", "--input", "/dev/videoX", *M], 1, "/dev/videoX: not a camera device"),
    (["camera", "--input", "/dev/video99", *M], 1, "no such camera device"),
    (["camera", "--input", "v4l2://abc", *M], 1, "v4l2://abc: not a camera device"),
    (["camera", "--input", "synthetic://?size=abc", *M], 1, "size=abc"),
    (["camera", "--input", "synthetic://?size=4", *M], 1, "size from 16 to 2048"),
    (["camera", "--input", "{d}/nothing.mp4", *M], 1, "no such file"),
    (["camera", "--input", "{d}/text.avi", *M], 1, "text.avi: cannot open it"),
    (["camera", "--input", "{d}/one.avi", *M], 1, "ended after 1 frames, before one window of 4 frames"),
    (["camera", *M], 1, "no input: give --input URI"),
    # camera: models
    (["camera", *SYN, "--model", "{d}/empty.pt"], 1, "not a readable fts-edge checkpoint"),
    (["camera", *SYN, "--model", "{d}/random.pt"], 1, "not a readable fts-edge checkpoint"),
    (["camera", *SYN, "--model", "{d}/nothing.onnx"], 1, "no such model"),
    (["camera", *SYN, "--model", "{d}/a_file"], 1, "unknown model type"),
    (["camera", *SYN, "--model", "{d}/adir"], 1, "is a folder; name a model file"),
    (["camera", *SYN, "--model", "{d}/nothing.engine"], 1, "no such model"),
    (["camera", *SYN, "--model", "{d}/m.onnx", "--teacher", "{d}/m.onnx"], 1, "not a readable fts-edge checkpoint"),
    # predict
    (["predict", "{d}/clip.avi", *M, "--clips", "0"], 2, "--clips must be at least 1"),
    (["predict", "{d}/clip.avi", *M, "--topk", "0"], 2, "--topk must be at least 1"),
    (["predict", "{d}/clip.avi", *M, "--threads", "999"], 2, "--threads must be from 0 to 256"),
    (["predict", "{d}/nothing*.avi", *M], 1, "no such file, folder or pattern"),
    (["predict", "{d}/adir", *M], 1, "no videos among the inputs"),
    (["predict", "{d}/text.avi", *M], 1, "text.avi: unreadable"),
    (["predict", "{d}/clip.avi", *M, "--json", "--csv"], 2, "not allowed with argument"),
    (["predict", "{d}/clip.avi", "--model", "{d}/random.pt"], 1, "not a readable fts-edge checkpoint"),
    # evaluate
    (["evaluate", "{d}/m.onnx", "--limit", "0"], 2, "--limit must be at least 1"),
    (["evaluate", "{d}/m.onnx", "--json-out", "{d}/adir"], 2, "--json-out {d}/adir: is a folder; name a file"),
    (
        ["evaluate", "{d}/m.onnx", "--dataset", "hmdb51", "--root", "{d}/hmdb", "--splits", "{d}/hmdb_splits"],
        1,
        "jump_test_split1.txt",
    ),
    (
        ["evaluate", "{d}/m.onnx", "--dataset", "folder", "--root", "{d}/nowhere"],
        1,
        "nowhere: dataset folder not found",
    ),
    (["evaluate", "{d}/m.onnx", "--split", "4"], 2, "invalid choice"),
    (["evaluate", "{d}/random.pt"], 1, "not a readable fts-edge checkpoint"),
    # verify
    (["verify", "{d}/m.onnx", "--clips", "0"], 2, "--clips must be at least 1"),
    (["verify", "{d}/m.onnx", "--runs", "0"], 2, "--runs must be at least 1"),
    (["verify", "{d}/m.onnx", "--min-agreement", "1.5"], 2, "--min-agreement must be from 0.0 to 1.0"),
    (["verify", "{d}/m.onnx", "--max-rel-diff", "-1"], 2, "--max-rel-diff must be at least 0.0"),
    (["verify", "{d}/m.onnx", "--json-out", "{d}/adir"], 2, "is a folder; name a file"),
    (["verify", "{d}/m.onnx", "--against", "{d}/perm.onnx", "--clips", "2"], 1, "disagree on classes"),
    (["verify", "{d}/nothing.engine"], 1, "no such model"),
    # export
    (["export", "{d}/empty.pt"], 1, "not a readable fts-edge checkpoint"),
    (["export", "{d}/random.pt"], 1, "not a readable fts-edge checkpoint"),
    (["export", "{d}/nothing.pt"], 1, "no such file"),
    (["export", "{d}/random.pt", "--batch", "0"], 2, "--batch must be from 1 to 256"),
    (["export", "{d}/random.pt", "--out", "{d}/adir"], 2, "--out {d}/adir: is a folder; name a file"),
    (["export", "{d}/random.pt", "--out", "{tmp}/m.txt"], 2, "name the ONNX file"),
    (["export", "{d}/random.pt", "--batch", "2", "--dynamic-batch"], 2, "not allowed with argument"),
    # build-engine
    (["build-engine", "{d}/m.onnx", "--int8", "--calib-clips", "0"], 2, "--calib-clips must be at least 1"),
    (["build-engine", "{d}/nothing.onnx"], 1, "no such ONNX"),
    (["build-engine", "{d}/m.onnx", "--min-agreement", "2"], 2, "--min-agreement must be from 0.0 to 1.0"),
    (["build-engine", "{d}/m.onnx", "--workspace", "1"], 2, "--workspace must be at least 16"),
    (["build-engine", "{d}/m.onnx", "--max-batch", "0"], 2, "--max-batch must be from 1 to 256"),
    (["build-engine", "{d}/m.onnx", "--calib-memory-mb", "1"], 2, "--calib-memory-mb must be at least 64"),
    (["build-engine", "{d}/m.onnx", "--calib-method", "guess"], 2, "invalid choice"),
    (["build-engine", "{d}/clip.avi"], 1, "engines are built from an exported ONNX"),
    (["build-engine", "{d}/random.pt"], 1, "not a readable fts-edge checkpoint"),
    (
        ["build-engine", "{d}/m.onnx", "--int8", "--onnx-only", "--calib-input", "{d}/text.avi"],
        1,
        "not a readable video",
    ),
    # bench
    (["bench", "--runs", "0"], 2, "--runs must be at least 1"),
    (["bench", "--warmup", "-1"], 2, "--warmup must be at least 0"),
    (["bench", "--widths", "abc"], 2, "--widths abc: numbers above 0"),
    (["bench", "--widths", "0"], 2, "--widths 0: numbers above 0"),
    (["bench", "--backends", "nope"], 2, "--backends nope: choose from torch, onnxruntime, tensorrt"),
    (["bench", "--precisions", "int4"], 2, "--precisions int4: choose from fp32, fp16, int8"),
    (["bench", "--frames", "1"], 2, "--frames must be at least 2"),
    (["bench", "--size", "5000"], 2, "--size must be from 8 to 4096"),
    (["bench", "--classes", "1"], 2, "--classes must be at least 2"),
    (["bench", "--input", "{d}/text.avi"], 1, "not a readable video"),
    (["bench", "--input", "{d}/one.avi"], 1, "1 frame decodes; the benchmark needs at least 2"),
    (["bench", "--input", "{d}/nothing.avi"], 1, "no such file"),
    (["bench", "--model", "{d}/m.onnx", "--batch", "0"], 2, "--batch must be from 1 to 256"),
    (["bench", "--model", "{d}/m.onnx", "--input", "{d}/text.avi"], 1, "not a readable video"),
    (["bench", "--model", "{d}/m.onnx", "--out", "{d}/a_file", "--runs", "1", "--warmup", "0"], 1, "a_file"),
    (["bench", "flow", "--sizes", "0x0"], 2, "--sizes"),
    (["bench", "flow", "--sizes", "abc"], 2, "--sizes"),
    (["bench", "flow", "--devices", "tpu"], 2, "--devices tpu: choose from cpu, cuda"),
    (["bench", "flow", "--input", "{d}/text.avi"], 1, "not a readable video"),
    (["bench", "stream", "--input", "{d}/one.avi"], 1, "the benchmark needs at least 2"),
    # data
    (["data", "synth", "{tmp}/s", "--size", "0"], 2, "--size must be from 8 to 4096"),
    (["data", "synth", "{tmp}/s", "--classes", "0"], 2, "--classes must be from 2 to 101"),
    (["data", "synth", "{tmp}/s", "--classes", "102"], 2, "--classes must be from 2 to 101"),
    (["data", "synth", "{tmp}/s", "--per-class", "0"], 2, "--per-class must be at least 1"),
    (["data", "synth", "{tmp}/s", "--frames", "1"], 2, "--frames must be at least 2"),
    (["data", "synth", "{tmp}/s", "--val-fraction", "1"], 2, "--val-fraction must be from 0.0 to 0.9"),
    (["data", "synth", "{tmp}/s", "--background", "2"], 2, "--background must be from 0.0 to 1.0"),
    (["data", "synth", "{tmp}/s", "--seed", "-1"], 2, "--seed must be at least 0"),
    (["data", "synth", "{d}/a_file"], 2, "a_file: is a file; name a folder"),
    (
        ["data", "check", "--dataset", "hmdb51", "--root", "{d}/hmdb", "--splits", "{d}/hmdb_splits"],
        1,
        "jump_test_split1.txt",
    ),
    (["data", "check", "--dataset", "hmdb51"], 1, "--root is required for the hmdb51 dataset"),
    (["data", "check", "--dataset", "ucf101", "--root", "{d}/adir"], 1, "classInd.txt: missing"),
    (["data", "check", "--dataset", "folder", "--root", "{d}/nowhere"], 1, "nowhere: dataset folder not found"),
    (["data", "check", "--dataset", "nope"], 2, "invalid choice"),
    # flow
    (["flow", "{d}/nothing.avi", "--out", "{tmp}/f.mp4", "--size", "-5"], 2, "--size must be from 16 to 1080"),
    (["flow", "{d}/clip.avi", "--out", "{tmp}/f.mp4", "--size", "3000"], 2, "--size must be from 16 to 1080"),
    (["flow", "{d}/clip.avi", "--out", "{tmp}/f.mp4", "--max-frames", "1"], 2, "--max-frames must be at least 2"),
    (["flow", "{d}/nothing.avi", "--out", "{tmp}/f.mp4"], 1, "no such file"),
    (["flow", "{d}/text.avi", "--out", "{tmp}/f.mp4"], 1, "not a readable video"),
    (["flow", "{d}/clip.avi"], 2, "the following arguments are required: --out"),
    # demo and train
    (["demo", "--epochs", "0"], 2, "--epochs must be at least 1"),
    (["demo", "--teacher-epochs", "0"], 2, "--teacher-epochs must be at least 1"),
    (["demo", "--seed", "-1"], 2, "--seed must be at least 0"),
    (["demo", "--out", "{d}/a_file", "--quick"], 1, "a_file: is a file, not a run folder"),
    (["train"], 2, "give the data folder (DATA) or --config"),
    (["train", "{d}/adir", "--epochs", "0"], 2, "--epochs must be at least 1"),
    (["train", "--config", "{d}/nothing.json"], 2, "not a settings file of fts-edge train"),
    (["train", "--config", "{d}/a_file"], 2, "not a settings file of fts-edge train"),
    (["train", "--config", "{d}/m.onnx.json"], 2, "not a settings file of fts-edge train"),
    (["train", "{d}/adir", "--config", "{d}/m.onnx.json", "--preset", "paper"], 2, "--preset and --config both"),
    (["train", "{d}/nowhere", "--out", "{tmp}/run"], 1, "nowhere: dataset folder not found"),
    (["train", "{d}/adir", "--out", "{d}/a_file"], 1, "a_file: is a file, not a run folder"),
    (["nonsense"], 2, "invalid choice"),
] + LIE_CASES


def _tree(*folders):
    """Every file under the folders with its size and mtime: what a failed command must not change."""
    out = {}
    for f in folders:
        for p in Path(f).rglob("*"):
            st = p.stat()
            out[str(p)] = (p.is_dir(), st.st_size if p.is_file() else 0, st.st_mtime_ns)
    return out


def _ids(cases):
    return [" ".join(Path(a).name if "/" in a else a for a in c[0][:4]) + f" {i}" for i, c in enumerate(cases)]


@pytest.mark.parametrize("argv,rc,says", CLI_CASES, ids=_ids(CLI_CASES))
def test_cli_bad_input(files, tmp_path, monkeypatch, capsys, argv, rc, says):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # engines/, runs/: nothing may appear here either
    argv = [a.format(d=files, tmp=tmp_path) for a in argv]
    before = _tree(files, work)
    try:
        got = main(argv)
    except SystemExit as e:  # argparse's own refusals
        got = e.code
    out, err = capsys.readouterr()
    assert got == rc, err
    said = err or out  # predict reports an unreadable video as its row, on stdout
    assert says.format(d=files) in said and "Traceback" not in err + out, err
    assert said.strip().count("\n") == 0, said
    assert _tree(files, work) == before, "a refused command left something behind"


def test_serve_on_a_busy_port_is_one_line(files, capsys):
    s, port = _busy_port()
    try:
        assert main(["camera", *SYN, "--model", str(files / "m.onnx"), "--serve", f"127.0.0.1:{port}"]) == 1
    finally:
        s.close()
    err = capsys.readouterr().err
    assert "cannot listen there" in err and err.count("\n") == 1


TINY = ["--dataset", "synthetic", "--frames", "4", "--size", "24", "--resize", "28", "--width", "0.125",
        "--warmup-epochs", "0", "--threads", "1"]
TRAIN_CASES = [
    (["--epochs", "0"], 2, "--epochs must be at least 1"),
    (["--batch-size", "0"], 2, "--batch-size must be at least 1"),
    (["--batch-size", "-4"], 2, "--batch-size must be at least 1"),
    (["--batch-size", "1000", "--epochs", "1"], 2, "larger than the training set"),
    (["--clip-grad", "-1"], 2, "--clip-grad must be at least 0.0"),
    (["--threads", "-1"], 2, "--threads must be from 0 to 256"),
    (["--lr", "0"], 2, "--lr must be above 0"),
    (["--lr", "nan"], 2, "--lr must be a number, got nan"),
    (["--momentum", "1.5"], 2, "--momentum must be from 0.0 to 0.999"),
    (["--weight-decay", "-1"], 2, "--weight-decay must be at least 0.0"),
    (["--width", "0"], 2, "--width must be above 0.0"),
    (["--frames", "1"], 2, "--frames must be at least 2"),
    (["--size", "4"], 2, "--size must be from 8 to 4096"),
    (["--size", "64", "--resize", "32"], 2, "--resize must be at least --size (64), got 32"),
    (["--stride", "0"], 2, "--stride must be at least 1"),
    (["--seed", "-1"], 2, "--seed must be at least 0"),
    (["--warmup-epochs", "-1"], 2, "--warmup-epochs must be at least 0"),
    (["--hint", "layer9"], 2, "hint must be blocks of layer1"),
    (["--precision", "fp8"], 2, "invalid choice"),
    (["--model", "resnet50"], 2, "invalid choice"),
    (["--out", "{d}/a_file", "--epochs", "1"], 2, "a_file: is a file, not a run folder"),
    (["--dataset", "folder", "--root", "{d}/nowhere"], 1, "nowhere: dataset folder not found"),
    (["--dataset", "hmdb51"], 1, "--root is required for the hmdb51 dataset"),
]


@pytest.mark.parametrize("argv,rc,says", TRAIN_CASES, ids=[" ".join(c[0][:2]) for c in TRAIN_CASES])
def test_training_script_bad_input(files, tmp_path, capsys, argv, rc, says):
    args = TINY + ["--alpha", "0", "--out", str(tmp_path / "r")] + [a.format(d=files) for a in argv]
    before = _tree(files)
    try:
        got = train_main("student", args)
    except SystemExit as e:
        got = e.code
    err = capsys.readouterr().err
    assert got == rc, err
    assert says in err and "Traceback" not in err and err.strip().count("\n") == 0, err
    assert _tree(files) == before and not (tmp_path / "r" / "last.pt").exists()


STUDENT_CASES = [
    (["--teacher", "{d}/empty.pt"], 1, "not a readable fts-edge checkpoint"),
    (["--teacher", "{d}/m.onnx"], 1, "not a readable fts-edge checkpoint"),
    (["--teacher", "{d}/nothing.pt"], 1, "no such file"),
    (["--init-from", "{d}/random.pt", "--teacher", "{teacher}"], 1, "not a readable fts-edge checkpoint"),
    (["--hint-from", "{teacher}", "--teacher", "{teacher}"], 2, "give --hint LAYER too"),
    (["--init-from-teacher", "--pretrained", "{d}/random.pt", "--teacher", "{teacher}"], 2, "choose one"),
    (["--init-stem-from", "{teacher}", "--teacher", "{teacher}"], 1, "--init-stem-from needs an RGB network"),
    (["--pretrained", "{d}/random.pt", "--alpha", "0"], 1, "not a readable state dict"),
]


@pytest.mark.parametrize("argv,rc,says", STUDENT_CASES, ids=[" ".join(c[0][:1]) for c in STUDENT_CASES])
def test_distillation_bad_input(files, tiny_run, tmp_path, capsys, argv, rc, says):
    args = TINY + ["--per-class", "6", "--num-classes", "4", "--out", str(tmp_path / "s"), "--epochs", "1"] + \
        [a.format(d=files, teacher=tiny_run["teacher"]) for a in argv]
    try:
        got = train_main("student", args)
    except SystemExit as e:
        got = e.code
    err = capsys.readouterr().err
    assert got == rc, err
    assert says in err and "Traceback" not in err and err.strip().count("\n") == 0, err
    assert not (tmp_path / "s" / "last.pt").exists()


def test_evaluate_script_bad_input(files, capsys):
    assert evaluate_main(["--student", str(files / "random.pt")]) == 1
    err = capsys.readouterr().err
    assert "not a readable fts-edge checkpoint" in err and err.count("\n") == 1
    assert evaluate_main(["--teacher", str(files / "nothing.pt")]) == 1
    err = capsys.readouterr().err
    assert "no such file" in err and err.count("\n") == 1


# -- what only a real process shows: closed or vanished outputs, a full disk, a deleted folder ------------
def _fts(*args, **kw):
    return subprocess.run([sys.executable, "-m", "fts_edge", *map(str, args)], capture_output=True, text=True,
                          timeout=300, **kw)


def test_a_closed_stdout_is_one_line(files):
    r = subprocess.run(f"{sys.executable} -m fts_edge camera --input synthetic:// --max-windows 1 "
                       f"--model {files / 'm.onnx'} >&-", shell=True, capture_output=False, stderr=subprocess.PIPE,
                       text=True, timeout=300)
    assert r.returncode == 1 and "standard output is closed: write the JSON lines to a file with --json-out" in r.stderr
    assert r.stderr.count("\n") == 1


def test_a_reader_that_goes_away_stops_the_camera_quietly(files):
    """`fts-edge camera ... | head -1`: head takes its line and leaves; the camera stops, silent, 0."""
    p = subprocess.Popen([sys.executable, "-m", "fts_edge", "camera", "--input", "synthetic://?frames=2000",
                          "--every", "1", "--model", str(files / "m.onnx")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    first = p.stdout.readline()
    p.stdout.close()  # the reader goes
    err = p.stderr.read()
    assert p.wait(timeout=120) == 0 and '"type": "start"' in first
    assert err == "", err


def test_a_full_disk_names_the_file(files, tmp_path):
    r = _fts("camera", "--input", "synthetic://", "--max-windows", "3", "--model", files / "m.onnx",
             "--json-out", "/dev/full")
    assert r.returncode == 1 and r.stderr.strip() == "error: /dev/full: No space left on device", r.stderr
    # training: a file size limit fails the checkpoint write the way a full disk does
    import resource

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))

    r = subprocess.run([sys.executable, str(ROOT / "train" / "train_student.py"), *TINY, "--alpha", "0",
                        "--epochs", "1", "--out", str(tmp_path / "r")], capture_output=True, text=True,
                       timeout=300, preexec_fn=small_files)
    assert r.returncode == 1, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {tmp_path / 'r'}") and "File too large" in line, r.stderr
    assert not list((tmp_path / "r").glob(".*.tmp"))  # no half-written temporary left


def test_doctor_in_a_deleted_folder_says_so(tmp_path):
    gone = tmp_path / "gone"
    r = subprocess.run(f"mkdir {gone} && cd {gone} && rmdir {gone} && {sys.executable} -m fts_edge doctor",
                       shell=True, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "working folder" in r.stdout and "deleted" in r.stdout
    assert "FATAL" not in r.stderr and "Traceback" not in r.stderr


def test_sigterm_stops_training_with_its_line(tmp_path):
    """SIGTERM (a service stopped, a job cancelled) stops a run as Ctrl-C does: a line, exit 143,
    the finished epochs kept."""
    p = subprocess.Popen([sys.executable, str(ROOT / "train" / "train_student.py"), *TINY, "--alpha", "0",
                          "--epochs", "50", "--per-class", "40", "--out", str(tmp_path / "r")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    import time
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "r" / "last.pt").exists():
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=60)[1]
    assert p.returncode == 143, err
    assert err.strip().splitlines()[-1] == ("interrupted; finished epochs are saved, run again with --resume "
                                            "(stopped by SIGTERM)")
    assert (tmp_path / "r" / "last.pt").exists()


def test_the_table_covers_enough():
    total = len(CLI_CASES) + len(TRAIN_CASES) + len(STUDENT_CASES) + 2 + 6
    assert total >= 150, total
    commands = {c[0][0] for c in CLI_CASES}
    assert {"camera", "predict", "evaluate", "verify", "export", "build-engine", "bench", "data", "flow", "demo",
            "train"} <= commands
