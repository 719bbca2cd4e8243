"""No traceback anywhere: every subcommand and training script through a table of bad inputs, each
answered by one line on stderr and the documented exit status (1: a problem the message explains,
2: bad usage)."""
import shutil
import socket

import numpy as np
import pytest

from fts_edge.device.bundle import metadata_path
from fts_edge.cli import main
from fts_edge.train.cli import evaluate_main, train_main


@pytest.fixture(scope="module")
def files(tiny_run, tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.pt").write_bytes(b"")
    (d / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    (d / "a_file").write_text("not a folder")
    shutil.copy(tiny_run["onnx"], d / "m.onnx")
    shutil.copy(metadata_path(tiny_run["onnx"]), metadata_path(d / "m.onnx"))
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

CLI_CASES = [
    # (argv with {d} for the files folder, exit status, what the line says)
    (["camera", *SYN, "--model", "{d}/m.onnx", "--every", "0"], 2, "--every must be at least 1"),
    (["camera", *SYN, "--model", "{d}/m.onnx", "--stride", "0"], 2, "--stride must be at least 1"),
    (["camera", *SYN, "--model", "{d}/m.onnx", "--threads", "100000"], 2, "--threads must be from 0 to 256"),
    (["camera", *SYN, "--model", "{d}/m.onnx", "--threads", "-1"], 2, "--threads must be from 0 to 256"),
    (["camera", *SYN, "--model", "{d}/m.onnx", "--on", "1.5"], 2, "--on must be from 0.0 to 1.0"),
    (["camera", *SYN, "--model", "{d}/m.onnx", "--off", "0.9"], 2, "--off must be from 0.0 to --on"),
    (["camera", *SYN, "--model", "{d}/m.onnx", "--serve", "abc"], 2, "the port must be a number"),
    (["camera", *SYN, "--model", "{d}/m.onnx", "--serve", ":99999"], 2, "the port must be a number"),
    (["camera", *SYN, "--model", "{d}/m.onnx", "--serve", "[::1]:p"], 2, "the port must be a number"),
    (["camera", "--input", "/dev/videoX", "--model", "{d}/m.onnx"], 1, "/dev/videoX: not a camera device"),
    (["camera", "--input", "v4l2://abc", "--model", "{d}/m.onnx"], 1, "v4l2://abc: not a camera device"),
    (["camera", "--input", "synthetic://?size=abc", "--model", "{d}/m.onnx"], 1, "size=abc"),
    (["camera", "--input", "{d}/nothing.mp4", "--model", "{d}/m.onnx"], 1, "no such file"),
    (["camera", *SYN, "--model", "{d}/empty.pt"], 1, "not a readable fts-edge checkpoint"),
    (["camera", *SYN, "--model", "{d}/nothing.onnx"], 1, "no such model"),
    (["camera", *SYN, "--model", "{d}/a_file"], 1, "unknown model type"),
    (["camera", *SYN, "--model", "{d}/m.onnx", "--max-windows", "0"], 2, "--max-windows must be at least 1"),
    (["export", "{d}/empty.pt"], 1, "not a readable fts-edge checkpoint"),
    (["export", "{d}/random.pt"], 1, "not a readable fts-edge checkpoint"),
    (["export", "{d}/random.pt", "--batch", "0"], 2, "--batch must be from 1 to 256"),
    (["build-engine", "{d}/m.onnx", "--int8", "--calib-clips", "0"], 2, "--calib-clips must be at least 1"),
    (["build-engine", "{d}/nothing.onnx"], 1, "no such ONNX"),
    (["build-engine", "{d}/m.onnx", "--min-agreement", "2"], 2, "--min-agreement must be from 0.0 to 1.0"),
    (["verify", "{d}/m.onnx", "--clips", "0"], 2, "--clips must be at least 1"),
    (["bench", "--runs", "0"], 2, "--runs must be at least 1"),
    (["bench", "--model", "{d}/m.onnx", "--batch", "0"], 2, "--batch must be from 1 to 256"),
    (["bench", "flow", "--sizes", "0x0"], 2, "--sizes"),
    (["bench", "flow", "--sizes", "abc"], 2, "--sizes"),
    (["bench", "--model", "{d}/m.onnx", "--out", "{d}/a_file"], 1, "a_file"),
    (["data", "synth", "{d}/s", "--size", "0"], 2, "--size must be from 8 to 4096"),
    (["data", "synth", "{d}/s", "--classes", "0"], 2, "--classes must be from 2 to 10"),
    (["data", "synth", "{d}/s", "--per-class", "0"], 2, "--per-class must be at least 1"),
    (["data", "synth", "{d}/a_file"], 2, "a_file: is a file; name a folder"),
    (["data", "check", "--dataset", "hmdb51", "--root", "{d}/hmdb", "--splits", "{d}/hmdb_splits"], 1,
     "jump_test_split1.txt"),
    (["flow", "{d}/nothing.avi", "--out", "{d}/f.mp4", "--size", "-5"], 2, "--size must be from 16 to 1080"),
    (["demo", "--epochs", "0"], 2, "--epochs must be at least 1"),
    (["camera", *SYN, "--model", "{d}/m.onnx", "--nonsense"], 2, "unrecognized arguments"),
]


@pytest.mark.parametrize("argv,rc,says", CLI_CASES, ids=[" ".join(c[0][:3]) + f" {i}" for i, c in enumerate(CLI_CASES)])
def test_cli_bad_input(files, capsys, argv, rc, says):
    got = main([a.format(d=files) for a in argv]) if "--nonsense" not in argv else None
    if got is None:
        with pytest.raises(SystemExit) as e:
            main([a.format(d=files) for a in argv])
        got = e.value.code
    err = capsys.readouterr().err
    assert got == rc, err
    assert says in err and "Traceback" not in err
    assert err.strip().count("\n") == 0, err


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
    (["--frames", "1"], 2, "--frames must be at least 2"),
    (["--out", "{d}/a_file", "--epochs", "1"], 2, "a_file: is a file, not a run folder"),
]


@pytest.mark.parametrize("argv,rc,says", TRAIN_CASES, ids=[" ".join(c[0][:2]) for c in TRAIN_CASES])
def test_training_script_bad_input(files, tmp_path, capsys, argv, rc, says):
    args = TINY + ["--alpha", "0", "--out", str(tmp_path / "r")] + [a.format(d=files) for a in argv]
    got = train_main("student", args)
    err = capsys.readouterr().err
    assert got == rc, err
    assert says in err and "Traceback" not in err and err.strip().count("\n") == 0, err


def test_training_from_a_broken_checkpoint_is_one_line(files, tmp_path, capsys):
    assert train_main("student", TINY + ["--teacher", str(files / "empty.pt"), "--out", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err
    assert "not a readable fts-edge checkpoint" in err and err.count("\n") == 1
    assert evaluate_main(["--student", str(files / "random.pt")]) == 1
    err = capsys.readouterr().err
    assert "not a readable fts-edge checkpoint" in err and err.count("\n") == 1


def test_the_table_covers_enough(files):
    assert len(CLI_CASES) + len(TRAIN_CASES) + 2 >= 45
