import subprocess
import sys

import pytest

from fts_edge.cli import build_parser, main


def _commands(parser, prefix=()):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield prefix + (name,)
                yield from _commands(sub, prefix + (name,))


@pytest.mark.parametrize("cmd", [()] + list(_commands(build_parser())))
def test_every_command_explains_itself(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main(list(cmd) + ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: fts-edge") and len(out) > 100


def test_console_script_runs_without_a_gpu_stack():
    r = subprocess.run([sys.executable, "-m", "fts_edge", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("fts-edge ")
    r = subprocess.run([sys.executable, "-c", "import fts_edge, sys; "
                        "assert 'tensorrt' not in sys.modules and 'pycuda' not in sys.modules"])
    assert r.returncode == 0


def test_demo_epoch_flags_reach_the_config_and_name_their_folder():
    from fts_edge.cli import demo_settings
    from fts_edge.demo import DemoConfig

    p = build_parser()
    cfg, out = demo_settings(p.parse_args(["demo"]))
    assert cfg == DemoConfig() and out == "runs/demo"
    cfg, out = demo_settings(p.parse_args(["demo", "--epochs", "30", "--teacher-epochs", "8", "--seed", "2"]))
    assert (cfg.epochs, cfg.teacher_epochs, cfg.seed) == (30, 8, 2)
    assert out == "runs/demo-e30-t8-seed2"  # never the default run's folder, whose settings differ
    cfg, _ = demo_settings(p.parse_args(["demo", "--quick", "--epochs", "3"]))
    assert cfg.epochs == 3 and cfg.per_class < DemoConfig.per_class
    # a demo folder made before the flow options were the default resumes with them off
    cfg, out = demo_settings(p.parse_args(["demo", "--flow-camera", "none", "--flow-illumination", "none"]))
    assert (cfg.flow_camera, cfg.flow_illumination) == ("none", "none") and out == "runs/demo"
    assert (DemoConfig().flow_camera, DemoConfig().flow_illumination) == ("affine", "normalize")
    cfg, _ = demo_settings(p.parse_args(["demo", "--rgb-illumination", "normalize"]))
    assert cfg.rgb_illumination == cfg.recipe.clip.rgb_illumination == "normalize"


def test_demo_refuses_zero_epochs_in_one_line(tmp_path, capsys):
    assert main(["demo", "--epochs", "0", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "--epochs must be at least 1" in err and "Traceback" not in err
    assert not (tmp_path / "d").exists()
