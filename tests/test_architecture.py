"""The architecture as contracts: packages by stage, each importing only those below it, and the
device half (device, live, data, core) importing no torch and nothing of the workstation half.
lint-imports checks pyproject.toml's contracts on the code; here it must pass, and must fail on a
copy of the package whose device half imports torch. ruff keeps the code at the project's line
length."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports(cwd, env=None):
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    return subprocess.run([exe, "--no-cache"], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def test_the_import_contracts_hold():
    r = _lint_imports(ROOT)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "Contracts: 2 kept, 0 broken." in r.stdout


def test_a_device_module_that_imports_torch_breaks_the_contract(tmp_path):
    import os

    shutil.copytree(ROOT / "fts_edge", tmp_path / "fts_edge", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bundle = tmp_path / "fts_edge" / "device" / "bundle.py"
    bundle.write_text(bundle.read_text() + "\n\ndef _sneaky():\n    import torch  # noqa: F401\n")
    r = _lint_imports(tmp_path, env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert r.returncode != 0
    assert "the device half imports no torch and nothing of the workstation half BROKEN" in r.stdout
    assert "fts_edge.device.bundle -> torch" in r.stdout


def test_ruff_is_clean():
    exe = shutil.which("ruff")
    if exe is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    r = subprocess.run([exe, "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:]


def test_the_device_half_imports_without_torch_in_a_fresh_interpreter():
    """What `import fts_edge.device` loads (python -X importtime lists it): no torch, no workstation package."""
    code = ("import sys, fts_edge.device, fts_edge.live.camera, fts_edge.data.datasets; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('fts_edge.train', 'fts_edge.nets', "
            "'fts_edge.flow', 'fts_edge.export'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
