#!/usr/bin/env bash
# Set up fts-edge on a Jetson with JetPack 6 (L4T R36: Python 3.10, TensorRT 10.3, CUDA 12.6).
#
#   bash jetson/install.sh [--force] [--venv DIR]
#
# - uses the system OpenCV (built with GStreamer, so CSI cameras work) instead of pip's;
# - makes a venv with --system-site-packages so JetPack's tensorrt and cv2 are visible in it;
# - installs pycuda, the project and its runtime dependencies (no pip opencv, no pip tensorrt);
# - ends with `fts-edge doctor`.
# Idempotent: running it again only fills in what is missing. Refuses a machine that is not a
# Jetson unless --force. JetPack 5 (L4T R35, Python 3.8, TensorRT 8.5) is refused: the engine
# code uses the TensorRT 10 API.
set -euo pipefail

force=0
venv="${HOME}/.venvs/fts-edge"
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --venv) shift; venv="${1:?--venv needs a folder}" ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
release_file=/etc/nv_tegra_release

if [ ! -f "$release_file" ]; then
  if [ "$force" -ne 1 ]; then
    echo "install.sh: this is not a Jetson (no $release_file). On a workstation use: pip install torch && pip install -e ." >&2
    echo "install.sh: pass --force to run the Jetson steps anyway." >&2
    exit 1
  fi
  echo "install.sh: not a Jetson, going on because of --force"
  l4t_major=""
else
  l4t_major="$(sed -n 's/^# R\([0-9]*\) (release).*/\1/p' "$release_file")"
  echo "install.sh: L4T R${l4t_major:-?} ($(head -n 1 "$release_file"))"
  case "$l4t_major" in
    36) echo "install.sh: JetPack 6 detected" ;;
    35) echo "install.sh: JetPack 5 (L4T R35: Python 3.8, TensorRT 8.5) is not supported: fts-edge builds engines with the TensorRT 10 API. Upgrade to JetPack 6." >&2
        exit 1 ;;
    *) if [ "$force" -ne 1 ]; then
         echo "install.sh: unknown L4T release R${l4t_major}; pass --force to try anyway" >&2
         exit 1
       fi ;;
  esac
fi

if [ "$(id -u)" -eq 0 ]; then sudo_cmd=""; else sudo_cmd="sudo"; fi
need_apt=()
python3 -c "import cv2" 2>/dev/null || need_apt+=(python3-opencv)
python3 -c "import venv" 2>/dev/null || need_apt+=(python3-venv)
dpkg -s python3-dev >/dev/null 2>&1 || need_apt+=(python3-dev)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "install.sh: installing ${need_apt[*]} from apt"
  $sudo_cmd apt-get update
  $sudo_cmd apt-get install -y "${need_apt[@]}"
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "install.sh: creating $venv (with system site-packages: JetPack's tensorrt and cv2)"
  python3 -m venv --system-site-packages "$venv"
fi
py="$venv/bin/python"
"$py" -m pip install --upgrade pip

# pip's opencv would shadow the system build (no GStreamer): make sure it is not in the venv.
if "$py" -m pip show opencv-contrib-python-headless >/dev/null 2>&1 || "$py" -m pip show opencv-python >/dev/null 2>&1; then
  "$py" -m pip uninstall -y opencv-contrib-python-headless opencv-python opencv-python-headless || true
fi

if ! "$py" -c "import torch" 2>/dev/null; then
  echo "install.sh: torch is missing. Install NVIDIA's wheel for JetPack 6 (see jetson/README.md), then run this again." >&2
  echo "install.sh: carrying on: inference with TensorRT or ONNX Runtime does not need torch." >&2
fi
"$py" -c "import pycuda" 2>/dev/null || "$py" -m pip install pycuda
"$py" -m pip install numpy onnx onnxruntime tqdm matplotlib
# --no-deps: the project's own opencv/torch requirements are met by the system and NVIDIA's wheels
"$py" -m pip install --no-deps -e "$repo"

echo "install.sh: done. Activate with: source $venv/bin/activate"
"$venv/bin/fts-edge" doctor || true
