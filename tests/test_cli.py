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
