import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from fts_edge.cli import main
from fts_edge.engine import check_engine_metadata, engine_path, summarise_layer_info, tensorrt_or_none
from fts_edge.errors import EngineError
from fts_edge.export import metadata_path, real_clips
from fts_edge.quantize import check_int8, quantize_int8


@pytest.fixture(scope="module")
def int8(tiny_run, tmp_path_factory):
    clips = np.random.default_rng(0).standard_normal((8, 3, 4, 24, 24)).astype(np.float32)
    out = tmp_path_factory.mktemp("q") / "student.int8.onnx"
    return quantize_int8(tiny_run["onnx"], clips, out), clips


def test_qdq_model_is_symmetric_per_channel_int8(int8, tiny_run):
    rep, _ = int8
    m = onnx.load(rep["int8_onnx"])
    ops = [n.op_type for n in m.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    zps = [inits[n.input[2]] for n in m.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
           and len(n.input) > 2 and n.input[2] in inits]
    assert zps and all(z.dtype == np.int8 and not z.any() for z in zps)  # symmetric int8 everywhere
    per_channel = [n for n in m.graph.node if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None
                   and inits[n.input[0]].dtype == np.int8 and inits[n.input[1]].size > 1]
    assert per_channel, "weights should carry one scale per output channel"
    # the stem convolution stays in float: its weight is not quantized
    stem = rep["excluded_nodes"][0]
    stem_node = next(n for n in m.graph.node if n.name == stem)
    assert inits[stem_node.input[1]].dtype == np.float32


def test_cpu_flavour_is_uint8_activations(tiny_run, tmp_path, caplog):
    import logging

    clips = np.random.default_rng(0).standard_normal((4, 3, 4, 24, 24)).astype(np.float32)
    with caplog.at_level(logging.INFO):
        rep = quantize_int8(tiny_run["onnx"], clips, tmp_path / "s.int8.cpu.onnx", flavor="cpu")
        logging.warning("still heard after quantization")
    said = [r.getMessage() for r in caplog.records]
    assert not any("pre-processing" in m for m in said)  # ORT's advice that does not apply is dropped
    assert "still heard after quantization" in said  # and the filter is gone afterwards
    m = onnx.load(rep["int8_onnx"])
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    q = [n for n in m.graph.node if n.op_type == "QuantizeLinear"]
    assert q and inits[q[0].input[2]].dtype == np.uint8


def test_int8_checked_against_fp32_in_onnxruntime(int8, tiny_run):
    rep, clips = int8
    chk = check_int8(tiny_run["onnx"], rep["int8_onnx"], clips, labels=np.zeros(len(clips), int))
    assert 0 <= chk["top1_agreement"] <= 1 and "int8_top1" in chk
    with pytest.raises(Exception, match="agrees with fp32"):
        check_int8(tiny_run["onnx"], rep["int8_onnx"], clips, min_agreement=1.01)


def test_build_engine_without_tensorrt_does_everything_else(tiny_run, tmp_path, capsys):
    if tensorrt_or_none() is not None:
        pytest.skip("TensorRT is installed here: the no-TensorRT path cannot be shown")
    import shutil
    onnx_path = tmp_path / "student.onnx"
    shutil.copy(tiny_run["onnx"], onnx_path)
    shutil.copy(metadata_path(tiny_run["onnx"]), metadata_path(onnx_path))
    rc = main(["build-engine", str(onnx_path), "--int8", "--calib-clips", "4", "--min-agreement", "0"])
    out, err = capsys.readouterr()
    assert rc == 3
    assert "student.int8.onnx (for TensorRT" in out and "student.int8.cpu.onnx (for ONNX Runtime" in out
    assert "top-1 agreement with fp32" in out
    assert err.strip().count("\n") == 0 and "needs TensorRT on the target device" in err
    meta = json.loads(metadata_path(tmp_path / "student.int8.onnx").read_text())
    assert meta["precision"] == "int8" and meta["quantization"]["check"]["clips"] > 0


def test_corrupt_onnx_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    assert main(["build-engine", str(bad), "--int8"]) == 1
    err = capsys.readouterr().err
    assert "not a valid ONNX model" in err and err.count("\n") == 1


def test_engine_metadata_mismatch_refused_with_rebuild_hint():
    built = {"tensorrt": "10.3.0", "gpu": "Orin", "compute_capability": "8.7", "precision": "int8", "onnx_sha256": "a"}
    check_engine_metadata(built, dict(built), "x.engine")
    for key, other in (("tensorrt", "10.7.0"), ("compute_capability", "8.6"), ("onnx_sha256", "b")):
        with pytest.raises(EngineError, match="rebuild it here") as e:
            check_engine_metadata(built, dict(built, **{key: other}), "x.engine")
        assert "\n" not in str(e.value)


def test_engine_names():
    assert engine_path("engines/student.onnx", "fp16").name == "student.fp16.engine"
    assert engine_path("engines/student.int8.onnx", "int8").name == "student.int8.engine"


def test_layer_precision_report_reads_the_inspector_json():
    info = {"Layers": [
        {"Name": "conv1 + relu", "LayerType": "CaskConvolution",
         "Outputs": [{"Name": "a", "Format/Datatype": "Channel major INT8 format where channel % 32 == 0"}]},
        {"Name": "conv2", "LayerType": "CaskConvolution",
         "Outputs": [{"Name": "b", "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}]},
        {"Name": "pool", "LayerType": "Reduce", "Outputs": [{"Name": "c", "Format/Datatype": "Row major linear FP32"}]}]}
    s = summarise_layer_info(info)
    assert s["by_precision"] == {"int8": 1, "fp16": 1, "fp32": 1}
    assert s["convolutions_by_precision"] == {"int8": 1, "fp16": 1}


@pytest.mark.skipif(tensorrt_or_none() is None, reason="TensorRT is not installed here (it runs on the Jetson/GPU host)")
def test_tensorrt_builds_and_reports_layer_precisions(tiny_run):
    from fts_edge.engine import build_engine, gpu_identity
    if gpu_identity() is None:
        pytest.skip("TensorRT is installed but no GPU is visible")
    rep = build_engine(tiny_run["onnx"], "fp16")
    assert rep["layers"]["by_precision"]


def test_fp16_onnx_keeps_float32_io(tiny_run, tmp_path):
    import shutil
    from fts_edge.quantize import fp16_onnx

    src = tmp_path / "student.onnx"
    shutil.copy(tiny_run["onnx"], src)
    rep = fp16_onnx(src)
    m = onnx.load(rep["fp16_onnx"])
    onnx.checker.check_model(m)
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert m.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    conv_w = [i for i in m.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert conv_w, "weights should be fp16"
