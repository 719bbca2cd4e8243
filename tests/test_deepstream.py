"""The DeepStream files (`fts-edge deepstream`) checked key by key against DeepStream 7's config
reference: the keys Gst-nvinfer parses (gstnvinfer_property_parser.h, CONFIG_GROUP_INFER_*, DeepStream
7.0 SDK API reference) and the keys of the deepstream-3d-action-recognition sample's own configs
(config_preprocess_3d_custom.txt, config_infer_primary_3d_action.txt,
deepstream_action_recognition_config.txt), with the values each documents. DeepStream itself is not
installed here: that the sample runs these files is for the first device (jetson/README.md)."""
import configparser
import json

import numpy as np
import pytest

from fts_edge.cli import main
from fts_edge.device.bundle import metadata_path

# Gst-nvdspreprocess [property] keys, with the documented values where they are enumerations
PREPROCESS_PROPERTY = {
    "enable": {0, 1}, "target-unique-ids": None, "process-on-frame": {0, 1}, "unique-id": None, "gpu-id": None,
    "network-input-shape": None, "network-input-order": {0, 1, 2},  # 0=NCHW, 1=NHWC, 2=CUSTOM
    "network-color-format": {0, 1, 2},  # 0=RGB, 1=BGR, 2=GRAY
    "tensor-data-type": {0, 1, 2, 3, 4, 5},  # 0=FP32, 1=UINT8, 2=INT8, 3=UINT32, 4=INT32, 5=FP16
    "tensor-name": None, "processing-width": None, "processing-height": None,
    "scaling-pool-memory-type": {0, 1, 2, 3, 4}, "scaling-pool-compute-hw": {0, 1, 2},
    "scaling-filter": {0, 1, 2, 3, 4, 5, 6}, "scaling-buf-pool-size": None, "tensor-buf-pool-size": None,
    "custom-lib-path": None, "custom-tensor-preparation-function": {"CustomSequenceTensorPreparation"},
}
SEQUENCE_USER_CONFIGS = {"channel-scale-factors", "channel-mean-offsets", "stride", "subsample"}
# Gst-nvinfer [property] keys (CONFIG_GROUP_INFER_*) used by the sample, with documented values
NVINFER_PROPERTY = {
    "gpu-id": None, "model-engine-file": None, "onnx-file": None, "labelfile-path": None, "batch-size": None,
    "process-mode": {1, 2},  # 1=primary, 2=secondary
    "input-tensor-from-meta": {0, 1}, "network-mode": {0, 1, 2},  # 0=FP32, 1=INT8, 2=FP16
    "gie-unique-id": None, "network-type": {0, 1, 2, 3, 100},  # 1=classifier
    "classifier-threshold": None, "output-tensor-meta": {0, 1}, "tensor-meta-pool-size": None,
}
APP_KEYS = {"uri-list", "display-sync", "preprocess-config", "infer-config", "muxer-height", "muxer-width",
            "muxer-batch-timeout", "tiler-height", "tiler-width", "debug", "enable-fps"}


def _read(path):
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    cp.read(path)
    return cp


def _check_keys(section, documented):
    for key, value in section.items():
        assert key in documented, f"{key} is not a documented key"
        allowed = documented[key] if isinstance(documented, dict) else None
        if allowed is not None:
            v = value if all(isinstance(a, str) for a in allowed) else int(value)
            assert v in allowed, f"{key}={value}: documented values are {sorted(allowed)}"


def test_deepstream_files_follow_the_config_reference_and_the_models_clip(pair, tmp_path, capsys):
    meta = json.loads(metadata_path(pair).read_text())
    spec = meta["clip_spec"]
    out = tmp_path / "ds"
    assert main(["deepstream", str(pair), "--out", str(out), "--uri", "file:///videos/a.mp4"]) == 0
    assert "deepstream-3d-action-recognition -c deepstream_action_recognition_config.txt" in capsys.readouterr().out
    pre, inf, app = (_read(out / n) for n in ("config_preprocess_3d.txt", "config_infer_3d.txt",
                                               "deepstream_action_recognition_config.txt"))
    assert set(pre.sections()) == {"property", "user-configs", "group-0"}
    _check_keys(pre["property"], PREPROCESS_PROPERTY)
    assert set(pre["user-configs"]) == SEQUENCE_USER_CONFIGS
    assert set(inf.sections()) == {"property"} and set(app.sections()) == {"action-recognition"}
    _check_keys(inf["property"], NVINFER_PROPERTY)
    assert set(app["action-recognition"]) <= APP_KEYS
    # the clip: NCDHW, RGB, float32, the model's input name and size
    p = pre["property"]
    assert p["network-input-shape"] == f"1;3;{spec['frames']};{spec['size']};{spec['size']}"
    assert (p["network-input-order"], p["network-color-format"], p["tensor-data-type"]) == ("2", "0", "0")
    assert p["tensor-name"] == meta["input_names"][0] == "clip"
    assert p["processing-width"] == p["processing-height"] == str(spec["size"])
    # the normalisation: (x - offset) * scale equals the camera's (x / 255 - mean) / std
    u = pre["user-configs"]
    scale = np.array([float(v) for v in u["channel-scale-factors"].split(";")])
    offset = np.array([float(v) for v in u["channel-mean-offsets"].split(";")])
    x = np.arange(256.0)[:, None]
    np.testing.assert_allclose((x - offset) * scale, (x / 255 - np.array(spec["mean"])) / np.array(spec["std"]),
                               atol=1e-4)
    assert int(u["subsample"]) == spec["stride"] - 1 and int(u["stride"]) == 5
    # the region is the centre square the camera's resize-then-crop keeps of a 1280x720 frame
    left, top, w, h = (int(v) for v in pre["group-0"]["roi-params-src-0"].split(";"))
    assert w == h == round(720 * spec["size"] / spec["resize"])
    assert abs(left + w / 2 - 640) <= 0.5 and abs(top + h / 2 - 360) <= 0.5
    # nvinfer: the model, its labels, a classifier fed by the preprocess metadata
    i = inf["property"]
    assert i["onnx-file"] == str(pair.resolve()) and i["network-mode"] == "0" and i["network-type"] == "1"
    assert i["input-tensor-from-meta"] == "1" and i["batch-size"] == "1"
    labels = (out / i["labelfile-path"]).read_text()
    assert labels.rstrip("\n").split(";") == meta["classes"] and labels.count("\n") == 1
    a = app["action-recognition"]
    assert (a["preprocess-config"], a["infer-config"], a["uri-list"]) == \
        ("config_preprocess_3d.txt", "config_infer_3d.txt", "file:///videos/a.mp4")


def test_deepstream_refuses_what_it_cannot_run(pair, tmp_path, capsys):
    """A batch the model was not exported for, class names a labels file cannot hold: one line each."""
    assert main(["deepstream", str(pair), "--out", str(tmp_path / "a"), "--sources", "2"]) == 1
    err = capsys.readouterr().err
    assert "built for batches of 1, DeepStream would batch 2 regions" in err and err.count("\n") == 1
    assert not (tmp_path / "a").exists()
    import onnx

    from fts_edge.device.bundle import write_onnx

    meta = json.loads(metadata_path(pair).read_text())
    meta["classes"] = ["wave;hello"] + meta["classes"][1:]
    meta.pop("onnx_sha256", None)
    write_onnx(pair, onnx.load(str(pair)), meta)
    assert main(["deepstream", str(pair), "--out", str(tmp_path / "b")]) == 1
    assert "class names with ';'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["model.pt", "model.txt"])
def test_deepstream_takes_engines_and_onnx_only(tmp_path, capsys, name):
    (tmp_path / name).write_text("x")
    assert main(["deepstream", str(tmp_path / name)]) == 1
    assert "DeepStream runs an engine (.engine) or an ONNX" in capsys.readouterr().err
