"""What NVIDIA's ``deepstream-3d-action-recognition`` sample needs to run a student: the
``nvdspreprocess`` config (3D sequence batching through the sample's custom sequence library), the
``nvinfer`` config (the engine, the labels, a classifier) and the app's own config, all from the
model's bundle, so DeepStream prepares clips as the camera does.

The mapping from the bundle's ClipSpec:
- ``network-input-shape`` is N;3;T;S;S (NCDHW) with N the most regions batched at once;
- the normalisation (x / 255 - mean) / std per channel becomes the custom library's
  ``channel-mean-offsets`` (255 * mean) and ``channel-scale-factors`` (1 / (255 * std));
- the frames a clip skips (ClipSpec.stride - 1) become ``subsample`` and the frames between two
  classified windows ``stride``;
- the camera resizes the short side to ``resize`` and crops the centre ``size`` square; DeepStream
  scales a region to the network size, so each source's region is that centre square of the
  muxer's frame (side = frame height * size / resize for a landscape frame).

Torch-free; nothing here needs DeepStream to be installed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from ..core.artifacts import atomic_write_text
from ..core.errors import FtsError
from .bundle import load_bundle

DS_ROOT = "/opt/nvidia/deepstream/deepstream"  # where DeepStream 7 installs itself on JetPack 6
SEQUENCE_LIB = f"{DS_ROOT}/lib/libnvds_custom_sequence_preprocess.so"
MUXER = (1280, 720)  # the sample's nvstreammux size
NETWORK_MODE = {"fp32": 0, "int8": 1, "fp16": 2}  # nvinfer's network-mode values


def _ini(sections: Dict[str, Dict[str, object]], header: str) -> str:
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for name, keys in sections.items():
        lines += ["", f"[{name}]"] + [f"{k}={v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def center_roi(width: int, height: int, size: int, resize: int) -> List[int]:
    """The region (left, top, width, height) the camera's preprocessing keeps of a frame: the
    centre square whose side is the short side scaled by size / resize."""
    side = max(1, round(min(width, height) * size / resize))
    return [(width - side) // 2, (height - side) // 2, side, side]


def deepstream_config(model, out_dir, sources: int = 1, max_rois: int = 0, every: int = 5,
                      uris: List[str] = ()) -> Dict[str, Path]:
    """Write labels.txt, config_preprocess_3d.txt, config_infer_3d.txt and
    deepstream_action_recognition_config.txt for ``model`` (an engine, or an ONNX nvinfer builds
    its engine from) into ``out_dir``. ``sources`` streams, one centre region each; ``max_rois``
    the batch (default: ``sources``); ``every`` frames between classified windows. Returns the
    paths written."""
    model = Path(model)
    if model.suffix not in (".engine", ".onnx"):
        raise FtsError(f"{model}: DeepStream runs an engine (.engine) or an ONNX (.onnx)")
    meta = load_bundle(model)
    if meta.get("role") != "student":
        raise FtsError(f"{model}: a {meta.get('role')}; DeepStream runs the RGB student")
    if meta.get("streaming"):
        raise FtsError(f"{model}: a streaming student (four stage graphs stepped frame by frame with state); "
                       "the DeepStream sample runs clip models: use the clip student's engine")
    if sources < 1 or every < 1 or max_rois < 0:
        raise FtsError("--sources and --every must be at least 1, --max-rois not negative")
    classes = [str(c) for c in meta["classes"]]
    bad = [c for c in classes if ";" in c or "\n" in c or "\r" in c]
    if bad:
        raise FtsError(f"{model}: class names with ';' or a line break cannot go in a DeepStream labels file: "
                       f"{bad[0]!r}")
    spec = meta["clip_spec"]
    if spec.get("rgb_illumination", "none") != "none":
        raise FtsError(f"{model}: trained with --rgb-illumination {spec['rgb_illumination']} (each frame brought to "
                       "one brightness), which nvdspreprocess's per-channel scale and offset cannot do; run it with "
                       "fts-edge camera")
    frames, size, resize, stride = int(spec["frames"]), int(spec["size"]), int(spec["resize"]), int(spec["stride"])
    inp = (meta.get("input_names") or ["clip"])[0]
    batch = max_rois or sources
    fixed = meta.get("batch")
    if isinstance(fixed, int) and fixed != batch:
        raise FtsError(f"{model}: built for batches of {fixed}, DeepStream would batch {batch} regions; export with "
                       f"--batch {batch} or --dynamic-batch (then build-engine --max-batch {batch})")
    profile = ((meta.get("engine") or {}).get("profile") or {}).get("max_batch")
    if profile is not None and profile < batch:
        raise FtsError(f"{model}: its optimization profile takes batches up to {profile}, DeepStream would batch "
                       f"{batch}; rebuild it with --max-batch {batch}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"labels": out / "labels.txt", "preprocess": out / "config_preprocess_3d.txt",
             "infer": out / "config_infer_3d.txt", "app": out / "deepstream_action_recognition_config.txt"}
    scale = ";".join(f"{1.0 / (255.0 * s):.9g}" for s in spec["std"])
    offsets = ";".join(f"{255.0 * m:.6g}" for m in spec["mean"])
    roi = center_roi(*MUXER, size, resize)
    origin = f"Written by fts-edge from {model.name} ({len(classes)} classes; clip {frames} x {size} x {size})."
    pre = {
        "property": {
            "enable": 1, "target-unique-ids": 1, "process-on-frame": 1, "unique-id": 5, "gpu-id": 0,
            "network-input-shape": f"{batch};3;{frames};{size};{size}",
            "network-input-order": 2,  # CUSTOM: the sequence library lays out NCDHW
            "network-color-format": 0,  # RGB, as the student was trained
            "tensor-data-type": 0,  # FP32: the engine's input is float32
            "tensor-name": inp,
            "processing-width": size, "processing-height": size,
            "scaling-pool-memory-type": 0, "scaling-pool-compute-hw": 0, "scaling-filter": 1,
            "scaling-buf-pool-size": 8, "tensor-buf-pool-size": 8,
            "custom-lib-path": SEQUENCE_LIB,
            "custom-tensor-preparation-function": "CustomSequenceTensorPreparation",
        },
        "user-configs": {
            "channel-scale-factors": scale, "channel-mean-offsets": offsets,
            "stride": every, "subsample": stride - 1,
        },
        "group-0": {
            "src-ids": ";".join(str(i) for i in range(sources)), "process-on-roi": 1,
            **{f"roi-params-src-{i}": ";".join(str(v) for v in roi) for i in range(sources)},
        },
    }
    infer = {
        "property": {
            "gpu-id": 0,
            ("model-engine-file" if model.suffix == ".engine" else "onnx-file"): str(model.resolve()),
            "labelfile-path": paths["labels"].name,
            "batch-size": batch, "process-mode": 1, "input-tensor-from-meta": 1,
            "network-mode": NETWORK_MODE[meta.get("precision", "fp32") if model.suffix == ".onnx"
                                         else meta.get("precision", "fp16")],
            "gie-unique-id": 1, "network-type": 1,  # a classifier
            # the student's output is logits, not probabilities: no threshold drops a class, the
            # sample's probe reads the output tensor (softmax there)
            "classifier-threshold": -1e9, "output-tensor-meta": 1, "tensor-meta-pool-size": 8,
        },
    }
    app = {
        "action-recognition": {
            "uri-list": ";".join(uris) if uris else "file:///path/to/your.mp4",
            "display-sync": 1,
            "preprocess-config": paths["preprocess"].name, "infer-config": paths["infer"].name,
            "muxer-height": MUXER[1], "muxer-width": MUXER[0], "muxer-batch-timeout": 40000,
            "tiler-height": MUXER[1], "tiler-width": MUXER[0], "debug": 0, "enable-fps": 1,
        },
    }
    atomic_write_text(paths["labels"], ";".join(classes) + "\n")
    atomic_write_text(paths["preprocess"], _ini(pre, origin + "\nGst-nvdspreprocess: 3D sequence batching, the "
                                                "model's ClipSpec; one centre region per source."))
    atomic_write_text(paths["infer"], _ini(infer, origin + "\nGst-nvinfer: the engine, its labels, a classifier."))
    atomic_write_text(paths["app"], _ini(app, origin + "\nRun: deepstream-3d-action-recognition -c "
                                         f"{paths['app'].name}"))
    return paths
