import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from fts_edge.cli import main
from fts_edge.device.bundle import metadata_path
from fts_edge.device.engine import engine_path, tensor_precision, tensorrt_or_none
from fts_edge.device.quantize import activation_bytes, check_int8, quantize_int8


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


def test_tensorrt_placement_quantizes_weighted_inputs_only(int8):
    """TensorRT's placement: Q/DQ on the inputs of Conv and Gemm but the 3-channel 3D stem (left in
    float, with the reason), none on their outputs, no quantized Relu/GlobalAveragePool, and the
    identity shortcut of each residual Add reading the block input's dequantized copy (so TensorRT
    can fuse the Add into the convolution)."""
    rep, _ = int8
    g = onnx.load(rep["int8_onnx"]).graph
    producer = {o: n for n in g.node for o in n.output}
    convs = [n for n in g.node if n.op_type in ("Conv", "Gemm")]
    stem = convs[0]
    assert stem.input[0] == g.input[0].name and producer.get(stem.input[0]) is None, "the stem reads the float clip"
    assert list(rep["kept_in_float"]) == [stem.name] and "3 input channels" in rep["kept_in_float"][stem.name]
    assert all(producer[n.input[0]].op_type == "DequantizeLinear" for n in convs[1:]), "every other one reads int8"
    quantized_inputs = [producer[n.input[0]].op_type for n in g.node if n.op_type == "QuantizeLinear"
                        and n.input[0] in producer]
    assert "Conv" not in quantized_inputs and "Gemm" not in quantized_inputs, \
        "no output of a weighted layer is quantized"
    assert set(rep["qdq"]["ops_reading_quantized"]) <= {"Conv", "Gemm", "Add"}
    shortcuts = [n for n in g.node if n.op_type == "Add" and
                 [producer[i].op_type if i in producer else None for i in n.input].count("Conv") == 1]
    assert shortcuts and all("DequantizeLinear" in [producer[i].op_type for i in n.input if i in producer]
                             for n in shortcuts)
    assert rep["stem_in_float"] is True


def test_residual_rewiring_keeps_the_numbers(int8, tiny_run):
    """Reading DQ(Q(x)) instead of x changes the Add's input only by x's own rounding."""
    rep, clips = int8
    chk = check_int8(tiny_run["onnx"], rep["int8_onnx"], clips)
    assert chk["max_abs_logit_diff"] < 1.0


def test_calibration_memory_is_bounded(tiny_run, tmp_path):
    per_clip = activation_bytes(tiny_run["onnx"])
    assert per_clip > 0
    clips = np.random.default_rng(1).standard_normal((6, 3, 4, 24, 24)).astype(np.float32)
    budget_mb = max(1, (2 * per_clip) >> 20) if per_clip >= 1 << 20 else 1
    rep = quantize_int8(tiny_run["onnx"], clips, tmp_path / "b.int8.onnx", method="entropy", memory_mb=budget_mb)
    assert rep["calibration_clips"] == 6 and rep["calibration_peak_mib"] <= budget_mb
    # a budget below one batch is refused with the way out in the message
    import fts_edge.device.quantize as q
    from fts_edge.core.errors import ExportError
    with pytest.raises(ExportError, match="raise --calib-memory-mb"):
        q.quantize_int8(tiny_run["onnx"], clips, tmp_path / "c.int8.onnx", memory_mb=0)


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
    assert ("not a readable ONNX model" in err or "not a valid ONNX model" in err) and err.count("\n") == 1


def test_engine_names():
    assert engine_path("engines/student.onnx", "fp16").name == "student.fp16.engine"
    assert engine_path("engines/student.int8.onnx", "int8").name == "student.int8.engine"


def test_tensor_precision_reads_long_and_short_formats():
    assert tensor_precision("Thirty-two wide channel vectorized row major Int8 format") == "int8"
    assert tensor_precision("Channel major FP16 format where channel % 8 == 0") == "fp16"
    assert tensor_precision("Row major linear FP32") == "fp32"
    assert tensor_precision("Half") == "fp16" and tensor_precision("Float") == "fp32"
    assert tensor_precision("Int8") == "int8"
    assert tensor_precision("Row major linear UInt8 format") == "unknown"  # not int8
    assert tensor_precision("N/A due to dynamic shapes") == "unknown"


@pytest.mark.skipif(tensorrt_or_none() is None,
                    reason="TensorRT is not installed here (it runs on the Jetson/GPU host)")
def test_tensorrt_builds_and_reports_layer_precisions(tiny_run):
    from fts_edge.device.engine import build_tensorrt_engine as build_engine
    from fts_edge.device.engine import gpu_identity
    if gpu_identity() is None:
        pytest.skip("TensorRT is installed but no GPU is visible")
    rep = build_engine(tiny_run["onnx"], "fp16")
    assert rep["metadata"]["layers"]["convolutions"] > 0


def test_fp16_onnx_keeps_float32_io(tiny_run, tmp_path):
    import shutil

    from fts_edge.device.quantize import fp16_onnx

    src = tmp_path / "student.onnx"
    shutil.copy(tiny_run["onnx"], src)
    rep = fp16_onnx(src)
    m = onnx.load(rep["fp16_onnx"])
    onnx.checker.check_model(m)
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert m.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    conv_w = [i for i in m.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert conv_w, "weights should be fp16"


def test_residuals_are_rewired_where_the_quantizer_left_them_float(int8, tmp_path):
    """ONNX Runtime's quantizer already points consumers at the DQ copy; where a quantizer does not
    (older versions, other tools), residuals_read_quantized does it."""
    from fts_edge.device.quantize import residuals_read_quantized

    rep, _ = int8
    m = onnx.load(rep["int8_onnx"])
    producer = {o: n for n in m.graph.node for o in n.output}
    undone = 0
    for n in m.graph.node:
        if n.op_type == "Add":
            for k, i in enumerate(n.input):
                if i in producer and producer[i].op_type == "DequantizeLinear":
                    q = producer[producer[i].input[0]]
                    n.input[k] = q.input[0]  # back to the float tensor
                    undone += 1
    path = tmp_path / "undone.onnx"
    onnx.save(m, str(path))
    assert undone >= 1 and residuals_read_quantized(path) == undone
    assert residuals_read_quantized(path) == 0  # nothing left to do
