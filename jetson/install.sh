#!/usr/bin/env bash
# Set up fts-edge's device half on a Jetson with JetPack 6.1 or later (L4T R36.4: Python 3.10,
# CUDA 12.6, TensorRT 10.3).
#
#   bash jetson/install.sh [--force] [--venv DIR]
#
# - needs JetPack's TensorRT Python package (python3-libnvinfer) and python3-venv, and says how to
#   get them when they are missing;
# - makes a venv with --system-site-packages, so JetPack's tensorrt and OpenCV (built with GStreamer,
#   for csi:// cameras) are visible in it;
# - installs cuda-python 12.x (JetPack 6's driver runs CUDA 12.6; cuda-python 13 needs a newer one),
#   numpy < 2 (JetPack's OpenCV is built against numpy 1), onnx, onnxruntime and the project without
#   torch; pycuda only where nvcc is found (it builds from source);
# - ends with `fts-edge doctor`.
# Idempotent. Refuses a machine that is not a Jetson unless --force, and L4T older than R36.4
# (JetPack 6.0 ships TensorRT 8.6, JetPack 5 TensorRT 8.5).
set -euo pipefail

force=0
venv="${HOME}/.venvs/fts-edge"
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --venv) shift; venv="${1:?--venv needs a folder}" ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
release_file="${FTS_EDGE_L4T_RELEASE_FILE:-/etc/nv_tegra_release}"  # overridable for tests

if [ ! -f "$release_file" ]; then
  if [ "$force" -ne 1 ]; then
    echo "install.sh: this is not a Jetson (no $release_file). On a workstation use: pip install -e '.[train]'" >&2
    echo "install.sh: pass --force to run the Jetson steps anyway." >&2
    exit 1
  fi
  echo "install.sh: not a Jetson, going on because of --force"
else
  # first line, e.g. "# R36 (release), REVISION: 4.0, GCID: ..., BOARD: generic, EABI: aarch64, DATE: ..."
  major="$(sed -n 's/^# R\([0-9]*\) (release).*/\1/p' "$release_file")"
  revision="$(sed -n 's/^# R[0-9]* (release), REVISION: \([0-9]*\).*/\1/p' "$release_file")"
  echo "install.sh: L4T R${major:-?}.${revision:-?}"
  if [ -z "$major" ] || [ -z "$revision" ] || [ "$major" -lt 36 ] || { [ "$major" -eq 36 ] && [ "$revision" -lt 4 ]; }; then
    echo "install.sh: fts-edge needs JetPack 6.1 or later (L4T R36.4, TensorRT 10.3); this is L4T R${major:-?}.${revision:-?}" >&2
    echo "install.sh: (JetPack 6.0 ships TensorRT 8.6, JetPack 5 TensorRT 8.5). Upgrade JetPack, or pass --force." >&2
    [ "$force" -eq 1 ] || exit 1
  fi
fi

missing=()
python3 -c "import venv, ensurepip" 2>/dev/null || missing+=(python3-venv)
python3 -c "import tensorrt" 2>/dev/null || missing+=(python3-libnvinfer)
python3 -c "import cv2" 2>/dev/null || missing+=(python3-opencv)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install.sh: missing system packages: ${missing[*]}" >&2
  echo "install.sh: install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  echo "install.sh: (python3-libnvinfer is JetPack's TensorRT for Python: sudo apt-get install nvidia-jetpack brings all of it)" >&2
  exit 1
fi
trt_version="$(python3 -c 'import tensorrt; print(tensorrt.__version__)')"
case "$trt_version" in
  10.*) echo "install.sh: TensorRT $trt_version" ;;
  *) echo "install.sh: TensorRT $trt_version found; fts-edge needs 10.x (JetPack 6.1 or later)" >&2
     [ "$force" -eq 1 ] || exit 1 ;;
esac

if [ ! -x "$venv/bin/python" ]; then
  echo "install.sh: creating $venv (with system site-packages: JetPack's tensorrt and cv2)"
  python3 -m venv --system-site-packages "$venv"
fi
py="$venv/bin/python"
"$py" -m pip install --upgrade "pip>=23"

# pip's opencv would shadow the system build (no GStreamer): make sure it is not in the venv.
for pkg in opencv-contrib-python-headless opencv-python opencv-python-headless opencv-contrib-python; do
  if "$py" -m pip show "$pkg" >/dev/null 2>&1; then "$py" -m pip uninstall -y "$pkg"; fi
done

"$py" -m pip install "numpy<2" "cuda-python>=12.2,<12.7" "onnx>=1.14,<1.18" "onnxruntime>=1.16" tqdm
# pycuda builds from source: only where the CUDA compiler is there (cuda-python is enough otherwise)
nvcc_bin="$(command -v nvcc || true)"
[ -n "$nvcc_bin" ] || { [ -x /usr/local/cuda/bin/nvcc ] && nvcc_bin=/usr/local/cuda/bin/nvcc; } || true
if [ -n "$nvcc_bin" ] && ! "$py" -c "import pycuda" 2>/dev/null; then
  echo "install.sh: nvcc at $nvcc_bin: also building pycuda (the fallback when cuda-python fails)"
  PATH="$(dirname "$nvcc_bin"):$PATH" "$py" -m pip install pycuda || echo "install.sh: pycuda did not build; cuda-python is used"
fi
# --no-deps: OpenCV and TensorRT are JetPack's; torch is only for training (pip install '.[train]')
"$py" -m pip install --no-deps -e "$repo"

echo "install.sh: done. Activate with: source $venv/bin/activate"
"$venv/bin/fts-edge" doctor || true
