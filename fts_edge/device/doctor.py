"""`fts-edge doctor`: what this machine has for the toolkit, and the one-line fix for each missing piece."""
from __future__ import annotations

import glob
import importlib
import os
import platform
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional

JETPACK_BY_L4T = {"36.4": "6.1/6.2", "36.3": "6.0", "36.2": "6.0 DP", "35.6": "5.1.4", "35.5": "5.1.3",
                  "35.4": "5.1.2", "35.3": "5.1.1", "35.2": "5.1", "35.1": "5.0.2"}


def _check(name: str, ok: bool, detail: str, fix: Optional[str] = None, needed: bool = True) -> Dict:
    return {"name": name, "ok": ok, "detail": detail, "fix": None if ok else fix, "needed": needed}


def _version(mod: str) -> Optional[str]:
    try:
        return str(importlib.import_module(mod).__version__)
    except Exception:
        return None


TEGRA_RELEASE = "/etc/nv_tegra_release"  # L4T's release line: present on a Jetson only
MODEL_FILES = ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model")  # the board's name


def jetson_info() -> Optional[Dict]:
    """L4T release, JetPack and the board's device-tree model; None off a Jetson."""
    rel = Path(TEGRA_RELEASE)
    if not rel.exists():
        return None
    text = rel.read_text()
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    l4t = f"{m.group(1)}.{m.group(2).split('.')[0]}" if m else None
    model = None
    for p in MODEL_FILES:
        if os.path.exists(p):
            model = Path(p).read_bytes().decode(errors="ignore").strip("\x00").strip()
            break
    return {"l4t": l4t, "jetpack": JETPACK_BY_L4T.get(l4t or "", "unknown"), "model": model}


def jetson_power() -> Dict:
    """Power mode and clocks on a Jetson: benchmark numbers mean nothing without them."""
    import shutil
    import subprocess

    out = {}
    for key, cmd in (("nvpmodel", ["nvpmodel", "-q"]), ("jetson_clocks", ["jetson_clocks", "--show"])):
        if not shutil.which(cmd[0]):
            continue
        try:
            out[key] = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()[:2000]
        except (OSError, subprocess.SubprocessError) as e:
            out[key] = f"unavailable: {e}"
    return out


# What a JetPack 6.1/6.2 device should run (L4T R36.4: CUDA 12.6, TensorRT 10.3, Python 3.10).
PINNED = {"cuda-python": ">=12.2,<12.7", "numpy": "<2", "onnxruntime": "the JetPack 6 wheel (onnxruntime-gpu) from "
          "NVIDIA's Jetson AI Lab pip index for jp6/cu126, or onnxruntime from PyPI (CPU)"}
JP6_INDEX_HINT = "NVIDIA's Jetson AI Lab pip index for JetPack 6 (jp6/cu126; see jetson/README.md)"


def l4t_at_least(l4t: Optional[str], want=(36, 4)) -> bool:
    try:
        major, minor = (int(x) for x in (l4t or "").split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= want


def diagnose() -> Dict:
    checks: List[Dict] = []
    try:
        cwd = os.getcwd()
    except FileNotFoundError:
        cwd = None
    checks.append(_check("working folder", cwd is not None, cwd or "deleted while this shell stood in it",
                         "cd to a folder that exists (relative paths, engines/ and runs/ are looked up there)"))
    py = platform.python_version()
    checks.append(_check("python", sys.version_info >= (3, 8), py, "use Python 3.8 or newer"))
    jet = jetson_info()
    on_jetson = jet is not None

    from .cudamem import gpu_identity
    gpu = gpu_identity()
    checks.append(_check("GPU (CUDA)", gpu is not None,
                         f"{gpu['name']} (compute capability {gpu['compute_capability']})" if gpu else
                         "none answers through cuda-python or pycuda",
                         "on a Jetson: JetPack 6.1+ and cuda-python 12.x (jetson/install.sh); on a PC: the NVIDIA "
                         "driver and cuda-python", needed=False))
    tv = _pkg_version("torch")
    checks.append(
        _check(
            "torch",
            tv is not None,
            tv or "not installed (only training, export and teacher mode need it)",
            "pip install 'fts-edge[train]' on a workstation; on a Jetson, NVIDIA's torch wheel for "
            "JetPack 6 from " + JP6_INDEX_HINT,
            needed=False,
        )
    )

    ov = _version("onnxruntime")
    if ov:
        import onnxruntime as ort
        prov = ort.get_available_providers()
        checks.append(_check("onnxruntime", True, f"{ov}, providers: "
                                                  f"{', '.join(p.replace('ExecutionProvider', '') for p in prov)}"))
        checks.append(
            _check(
                "onnxruntime CUDA provider",
                "CUDAExecutionProvider" in prov,
                "present" if "CUDAExecutionProvider" in prov else "CPU only",
                "pip install onnxruntime-gpu (on a Jetson: the JetPack 6 wheel from " + JP6_INDEX_HINT + ")",
                needed=False,
            )
        )
    else:
        checks.append(_check("onnxruntime", False, "not installed", "pip install onnxruntime"))
    checks.append(_check("onnx", _version("onnx") is not None, _version("onnx") or "not installed", "pip install onnx"))
    sim = _pkg_version("onnxsim")  # by its metadata: importing onnxsim imports torch
    checks.append(_check("onnxsim", sim is not None, sim or "not installed",
                         "pip install onnxsim (optional: without it the ONNX is kept unsimplified)", needed=False))

    from .engine import tensorrt_or_none, trt_version
    trt = tensorrt_or_none()
    trt_ok = trt is not None and trt_version(trt)[:1] == (10,)
    checks.append(_check("TensorRT", trt_ok, f"{trt.__version__}" + ("" if trt_ok else " (fts-edge needs 10.x)")
                         if trt else "not installed",
                         "on a Jetson: JetPack 6.1 or later ships TensorRT 10.3; make the venv with "
                         "--system-site-packages (jetson/install.sh). On a PC: pip install 'tensorrt>=10,<11'",
                         needed=on_jetson))
    cp, pc = _pkg_version("cuda-python"), _pkg_version("pycuda")
    cp_ok = bool(cp) and cp.split(".")[0] == "12"
    detail = ", ".join(x for x in (f"cuda-python {cp}" if cp else "", f"pycuda {pc}" if pc else "") if x) or "neither"
    checks.append(_check("cuda-python / pycuda", cp_ok or bool(pc), detail,
                         f"pip install 'cuda-python{PINNED['cuda-python']}' (JetPack 6's driver runs CUDA 12.x; "
                         "cuda-python 13 needs a newer driver)", needed=on_jetson))
    if cp and not cp_ok:
        checks.append(_check("cuda-python version", False, f"{cp}: built for another CUDA than JetPack 6's 12.x",
                             f"pip install 'cuda-python{PINNED['cuda-python']}'", needed=False))
    nv = _pkg_version("numpy")
    if on_jetson and nv:
        checks.append(_check("numpy < 2 (JetPack's OpenCV)", nv.split(".")[0] == "1", nv,
                             "pip install 'numpy<2' (JetPack 6's system OpenCV is built against numpy 1)"))

    cv = _version("cv2")
    if cv:
        import cv2
        info = cv2.getBuildInformation()
        gst = re.search(r"GStreamer:\s*YES", info) is not None
        contrib = hasattr(cv2, "optflow") and hasattr(cv2.optflow, "DualTVL1OpticalFlow_create")
        gui = re.search(r"GTK[^:]*:\s*YES|QT:\s*YES|Win32 UI:\s*YES|Cocoa:\s*YES", info) is not None
        checks.append(_check("opencv", True, f"{cv} from {os.path.dirname(cv2.__file__)}"))
        checks.append(_check("opencv GStreamer (CSI cameras)", gst, "yes" if gst else "no",
                             "use the system OpenCV built with GStreamer (apt: python3-opencv on JetPack) instead of "
                             "pip's "
                             "(jetson/install.sh does this)", needed=on_jetson))
        from ..data.sources import hardware_decoding
        hw, why = hardware_decoding()
        checks.append(_check("video decoding (rtsp://, H.264/H.265 files)", hw,
                             f"hardware: {why}" if hw else f"FFmpeg on the CPU: {why}",
                             "on a Jetson: the system OpenCV (python3-opencv, built with GStreamer) and JetPack's "
                             "nvv4l2decoder (nvidia-l4t-gstreamer)", needed=False))
        checks.append(_check("opencv contrib (reference TV-L1)", contrib, "yes" if contrib else "no",
                             "pip install opencv-contrib-python-headless (workstations; the TVL1 layers work without "
                             "it)",
                             needed=False))
        checks.append(
            _check(
                "opencv GUI (--display)",
                gui,
                "yes" if gui else "no (headless build)",
                "use --serve HOST:PORT or --output FILE, or install an OpenCV with GUI support",
                needed=False,
            )
        )
    else:
        checks.append(_check("opencv", False, "not installed", "pip install opencv-contrib-python-headless"))

    cams = sorted(glob.glob("/dev/video*"))
    checks.append(
        _check(
            "cameras",
            bool(cams),
            ", ".join(cams) if cams else "none under /dev/video*",
            "connect a camera (ls /dev/video*), or try `fts-edge camera --input synthetic://`",
            needed=False,
        )
    )
    if on_jetson:
        jp_ok = l4t_at_least(jet["l4t"])
        checks.append(_check("Jetson", jp_ok, f"{jet['model']}, L4T {jet['l4t']}, JetPack {jet['jetpack']}",
                             "fts-edge needs JetPack 6.1 or later (L4T R36.4: TensorRT 10.3); JetPack 6.0 ships "
                             "TensorRT 8.6 and JetPack 5 TensorRT 8.5: upgrade with NVIDIA's SDK Manager or apt"))
    engines = sorted(glob.glob("engines/*.engine")) + sorted(glob.glob("engines/*.onnx"))
    checks.append(_check("models in engines/", bool(engines), ", ".join(engines[:6]) or "none",
                         "run `fts-edge demo`, or `fts-edge build-engine --int8` on the device", needed=False))
    missing = [c for c in checks if not c["ok"] and c["needed"]]
    return {"python": py, "platform": platform.platform(), "jetson": jet, "checks": checks,
            "recommended": PINNED,
            "ready": {"train": all(c["ok"] for c in checks if c["name"] in ("torch", "onnx", "opencv")),
                      "cpu_inference": all(c["ok"] for c in checks if c["name"] in ("onnxruntime", "opencv")),
                      "tensorrt_engines": trt_ok and gpu is not None},
            "missing_required": [c["name"] for c in missing]}


def _pkg_version(dist: str) -> Optional[str]:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return None


def print_report(rep: Dict) -> None:
    print(f"fts-edge doctor: Python {rep['python']} on {rep['platform']}")
    if rep["jetson"]:
        j = rep["jetson"]
        print(f"Jetson: {j['model']}, L4T {j['l4t']} (JetPack {j['jetpack']})")
    for c in rep["checks"]:
        mark = "ok " if c["ok"] else ("MISSING" if c["needed"] else "absent")
        print(f"  [{mark:7s}] {c['name']:34s} {c['detail']}")
        if c["fix"]:
            print(f"            fix: {c['fix']}")
    r = rep["ready"]
    print(f"ready: training {'yes' if r['train'] else 'no'}, CPU inference {'yes' if r['cpu_inference'] else 'no'}, "
          f"TensorRT engines {'yes' if r['tensorrt_engines'] else 'no'}")
