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


def jetson_info() -> Optional[Dict]:
    rel = Path("/etc/nv_tegra_release")
    if not rel.exists():
        return None
    text = rel.read_text()
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    l4t = f"{m.group(1)}.{m.group(2).split('.')[0]}" if m else None
    model = None
    for p in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        if os.path.exists(p):
            model = Path(p).read_bytes().decode(errors="ignore").strip("\x00").strip()
            break
    return {"l4t": l4t, "jetpack": JETPACK_BY_L4T.get(l4t or "", "unknown"), "model": model}


def diagnose() -> Dict:
    checks: List[Dict] = []
    py = platform.python_version()
    checks.append(_check("python", sys.version_info >= (3, 8), py, "use Python 3.8 or newer"))
    jet = jetson_info()
    on_jetson = jet is not None

    tv = _version("torch")
    cuda = False
    if tv:
        import torch
        cuda = torch.cuda.is_available()
        detail = f"{tv}, CUDA {'yes: ' + torch.cuda.get_device_name(0) if cuda else 'no'}"
        checks.append(_check("torch", True, detail))
        checks.append(_check("GPU (CUDA)", cuda, "visible to torch" if cuda else "none visible",
                             "on a Jetson install NVIDIA's torch wheel for your JetPack (jetson/install.sh); on a PC "
                             "install the CUDA build of torch and the NVIDIA driver", needed=False))
    else:
        checks.append(_check("torch", False, "not installed", "pip install torch (see README: torch==2.13.0 on the reference machines)"))

    ov = _version("onnxruntime")
    if ov:
        import onnxruntime as ort
        prov = ort.get_available_providers()
        checks.append(_check("onnxruntime", True, f"{ov}, providers: {', '.join(p.replace('ExecutionProvider', '') for p in prov)}"))
        checks.append(_check("onnxruntime CUDA provider", "CUDAExecutionProvider" in prov,
                             "present" if "CUDAExecutionProvider" in prov else "CPU only",
                             "pip install onnxruntime-gpu (on a Jetson: the wheel for your JetPack from NVIDIA's Jetson Zoo)",
                             needed=False))
    else:
        checks.append(_check("onnxruntime", False, "not installed", "pip install onnxruntime"))
    checks.append(_check("onnx", _version("onnx") is not None, _version("onnx") or "not installed", "pip install onnx"))
    checks.append(_check("onnxsim", _version("onnxsim") is not None, _version("onnxsim") or "not installed",
                         "pip install onnxsim (optional: without it the ONNX is kept unsimplified)", needed=False))

    from .engine import tensorrt_or_none
    trt = tensorrt_or_none()
    checks.append(_check("TensorRT", trt is not None, f"{trt.__version__}" if trt else "not installed",
                         "on a Jetson: JetPack ships it; make the venv with --system-site-packages (jetson/install.sh). "
                         "On a PC: pip install tensorrt", needed=False))
    cp, pc = _version("cuda") or _pkg_version("cuda-python"), _pkg_version("pycuda")
    checks.append(_check("cuda-python / pycuda", bool(cp or pc),
                         ", ".join(x for x in (f"cuda-python {cp}" if cp else "", f"pycuda {pc}" if pc else "") if x) or "neither",
                         "pip install cuda-python (or pycuda) for TensorRT engines", needed=False))

    cv = _version("cv2")
    if cv:
        import cv2
        info = cv2.getBuildInformation()
        gst = re.search(r"GStreamer:\s*YES", info) is not None
        contrib = hasattr(cv2, "optflow") and hasattr(cv2.optflow, "DualTVL1OpticalFlow_create")
        gui = re.search(r"GTK[^:]*:\s*YES|QT:\s*YES|Win32 UI:\s*YES|Cocoa:\s*YES", info) is not None
        checks.append(_check("opencv", True, f"{cv} from {os.path.dirname(cv2.__file__)}"))
        checks.append(_check("opencv GStreamer (CSI cameras)", gst, "yes" if gst else "no",
                             "use the system OpenCV built with GStreamer (apt: python3-opencv on JetPack) instead of pip's "
                             "(jetson/install.sh does this)", needed=on_jetson))
        checks.append(_check("opencv contrib (reference TV-L1)", contrib, "yes" if contrib else "no",
                             "pip install opencv-contrib-python-headless (workstations; the TVL1 layers work without it)",
                             needed=False))
        checks.append(_check("opencv GUI (--display)", gui, "yes" if gui else "no (headless build)",
                             "use --serve HOST:PORT or --output FILE, or install an OpenCV with GUI support", needed=False))
    else:
        checks.append(_check("opencv", False, "not installed", "pip install opencv-contrib-python-headless"))

    cams = sorted(glob.glob("/dev/video*"))
    checks.append(_check("cameras", bool(cams), ", ".join(cams) if cams else "none under /dev/video*",
                         "connect a camera (ls /dev/video*), or try `fts-edge camera --input synthetic://`", needed=False))
    if on_jetson:
        jp_ok = (jet["l4t"] or "").startswith("36")
        checks.append(_check("Jetson", jp_ok, f"{jet['model']}, L4T {jet['l4t']}, JetPack {jet['jetpack']}",
                             "fts-edge targets JetPack 6 (L4T R36); JetPack 5 is refused by jetson/install.sh"))
    engines = sorted(glob.glob("engines/*.engine")) + sorted(glob.glob("engines/*.onnx"))
    checks.append(_check("models in engines/", bool(engines), ", ".join(engines[:6]) or "none",
                         "run `fts-edge demo`, or `fts-edge build-engine --int8` on the device", needed=False))
    missing = [c for c in checks if not c["ok"] and c["needed"]]
    return {"python": py, "platform": platform.platform(), "jetson": jet, "checks": checks,
            "ready": {"train": all(c["ok"] for c in checks if c["name"] in ("torch", "onnx", "opencv")),
                      "cpu_inference": all(c["ok"] for c in checks if c["name"] in ("onnxruntime", "opencv")),
                      "tensorrt_engines": trt is not None and cuda},
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
