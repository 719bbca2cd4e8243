"""The TensorRT path against the documented contract, off the device.

tests/standin holds stand-ins for ``tensorrt`` (10.3), ``cuda.bindings.runtime`` (cuda-python 12.6)
and ``pycuda.driver``; their headers say what they prove and what they do not. Every public name
they define is checked here against the names read out of the real packages
(tests/data/*-names.txt, made by tests/tools/api_names.py), so fts-edge cannot call a name that
TensorRT 10.3 or cuda-python 12.6 lacks and still pass. Through them: build-engine --fp16/--int8 ->
.engine -> camera / verify / bench --model, refusals, the pycuda fallback, freed buffers.
"""
import importlib
import inspect
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from fts_edge.cli import main
from fts_edge.device.bundle import metadata_path

STANDIN = Path(__file__).resolve().parent / "standin"
DATA = Path(__file__).resolve().parent / "data"
STANDIN_MODULES = ("tensorrt", "cuda", "cuda.bindings", "cuda.bindings.runtime", "pycuda", "pycuda.driver")


@pytest.fixture
def standin(monkeypatch):
    """Make the stand-ins importable as tensorrt / cuda / pycuda for one test."""
    for m in STANDIN_MODULES:
        monkeypatch.delitem(sys.modules, m, raising=False)
    monkeypatch.syspath_prepend(str(STANDIN))
    for var in ("FTS_STANDIN_TRT_VERSION", "FTS_STANDIN_CUDA_ERROR", "FTS_STANDIN_GPU", "FTS_STANDIN_CC",
                "FTS_STANDIN_REFUSE", "FTS_STANDIN_SMS", "FTS_STANDIN_NO_INT8"):
        monkeypatch.delenv(var, raising=False)
    yield importlib.import_module("tensorrt")
    for m in STANDIN_MODULES:
        sys.modules.pop(m, None)


def _names(path):
    return {line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")}


def _public(module):
    """Public classes and functions a stand-in module defines, with their public members."""
    out = set()
    for name, value in vars(module).items():
        if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
            continue
        out.add(name)
        if inspect.isclass(value):
            out |= {f"{name}.{m}" for m in vars(value) if not m.startswith("_")}
            out |= {f"{name}.{m}" for m in getattr(value, "__members__", {})}  # enum members
    return out


TRT_API = json.loads((DATA / "tensorrt-10.3.0-api.json").read_text())  # tests/tools/api_names.py


def trt_member(cls: str, name: str):
    """The real TensorRT 10.3 member ``name`` of class ``cls`` (or of a base), or None."""
    c = TRT_API["classes"].get(cls)
    if c is None:
        return None
    if c["enum"] and name in c["enum"]:
        return {"kind": "enum_value", "value": c["enum"][name]}
    for k in (cls, *c["bases"]):
        m = TRT_API["classes"].get(k, {}).get("members", {}).get(name)
        if m:
            return m
    return None


def arity_fits(member, nargs: int) -> bool:
    """Whether a call with ``nargs`` arguments (self not counted) fits one of the method's
    signatures (required parameters up to all of them)."""
    sigs = member.get("signatures") or []
    for sig in sigs:
        params = [q for q in sig["params"] if q["name"] != "self"]
        if sum(not q["default"] for q in params) <= nargs <= len(params):
            return True
    return not sigs


def test_every_standin_tensorrt_name_is_tensorrt_10_3s_with_its_owner_arity_and_value(standin):
    """The stand-in against the real bindings' API (classes, members, pybind11 signatures, enum
    values read from the TensorRT 10.3 wheel): each class exists, each member is that class's, each
    method takes what the real one takes, each enum member has the real value."""
    problems = []
    for cname, cls in vars(standin).items():
        if cname.startswith("_") or not inspect.isclass(cls) or cls.__module__ != standin.__name__:
            continue
        if cname not in TRT_API["classes"]:
            problems.append(f"class {cname}")
            continue
        for mname, mval in getattr(cls, "__members__", {}).items():
            real = trt_member(cname, mname)
            if real is None or real.get("value") != int(mval.value):
                problems.append(f"{cname}.{mname} = {int(mval.value)}, TensorRT: {real and real.get('value')}")
        for mname, mval in vars(cls).items():
            if mname.startswith("_") and mname != "__init__" or mname in getattr(cls, "__members__", {}):
                continue
            if cname == "Logger" and mname == "messages":
                continue  # the stand-in's record of log lines, read by no fts-edge code
            real = trt_member(cname, mname)
            if real is None:
                problems.append(f"{cname}.{mname}")
            elif inspect.isfunction(mval) and real["kind"] == "method":
                n = len(inspect.signature(mval).parameters) - 1
                if not arity_fits(real, n):
                    problems.append(f"{cname}.{mname} takes {n}, TensorRT: {real['signatures']}")
    assert not problems, f"not as in TensorRT 10.3: {problems}"


def test_every_standin_cuda_name_exists_in_cuda_python_12_6(standin):
    real = _names(DATA / "cuda-python-12.6.2-runtime-names.txt")
    rt = importlib.import_module("cuda.bindings.runtime")
    api = {n for n in vars(rt) if not n.startswith("_") and n not in ("live_allocations", "annotations")
           and not inspect.ismodule(vars(rt)[n]) and getattr(vars(rt)[n], "__module__", rt.__name__) == rt.__name__}
    missing = sorted(n for n in api if n not in real)
    members = {f"{e}.{m}" for e in ("cudaMemcpyKind", "cudaError_t") for m in getattr(rt, e).__members__}
    missing += sorted(m for m in members if m not in real)
    assert not missing, f"names cuda-python 12.6 does not have: {missing}"


def test_a_name_tensorrt_lacks_fails_against_the_standin(standin):
    """The point of the API check: an attribute of another TensorRT (here 8.x's) is an error."""
    b = standin.Builder(standin.Logger())
    with pytest.raises(AttributeError):
        b.build_engine  # noqa: B018 - removed in TensorRT 10
    assert trt_member("Builder", "build_engine") is None and trt_member("Builder", "build_serialized_network")


def _camera_rows(model, video, tmp_path, tag):
    out = tmp_path / f"{tag}.jsonl"
    assert main(["camera", "--input", str(video), "--model", str(model), "--max-windows", "6", "--every", "3",
                 "--json-out", str(out)]) == 0
    return [json.loads(line) for line in out.read_text().splitlines() if '"prediction"' in line]


def test_build_fp16_and_int8_engines_then_camera_matches_onnx(standin, pair, tmp_path, shared_data, capsys):
    video = shared_data / "vtest.avi"
    rc = main(["build-engine", str(pair), "--fp16", "--int8", "--calib-input", str(video), "--calib-clips", "8",
               "--min-agreement", "0", "--timing-cache", str(tmp_path / "timing.cache")])
    out = capsys.readouterr().out
    assert rc == 0, out
    d = pair.parent
    for prec, src in (("fp16", "student.onnx"), ("int8", "student.int8.onnx")):
        engine = d / f"student.{prec}.engine"
        meta = json.loads(metadata_path(engine).read_text())
        onnx_meta = json.loads(metadata_path(d / src).read_text())
        # the engine carries the ONNX's bundle and its own identity
        assert meta["classes"] == onnx_meta["classes"] and meta["clip_spec"] == onnx_meta["clip_spec"]
        assert meta["input_names"] == ["clip"] and meta["output_names"] == ["logits"]
        assert meta["precision"] == prec and meta["parent_onnx_sha256"] == onnx_meta["onnx_sha256"]
        assert meta["engine"]["tensorrt"] == "10.3.0.26" and meta["engine"]["gpu"] == "Orin (stand-in)"
        assert meta["engine"]["compute_capability"] == "8.7" and len(meta["engine"]["sha256"]) == 64
        n = meta["layers"]["convolutions"]
        by = meta["layers"]["convolutions_by_precision"]
        if prec == "int8":  # every convolution but the 3-channel stem, which the Q/DQ placement keeps in float
            assert by == {"int8": n - 1, "fp16": 1} and meta["layers"]["convolutions_not_int8"] == ["/stem/stem.0/Conv"]
            assert "not in int8: /stem/stem.0/Conv" in out
        else:
            assert n > 0 and by == {"fp16": n}
        assert f"built {engine}" in out
        # the camera on the engine gives what ONNX Runtime gives on the ONNX it was built from, window by window
        got = _camera_rows(engine, video, tmp_path, f"engine-{prec}")
        want = _camera_rows(d / src, video, tmp_path, f"onnx-{prec}")
        assert len(got) == len(want) == 6
        for g, w in zip(got, want):
            assert g["frame"] == w["frame"] and g["top"][0]["label"] == w["top"][0]["label"]
            np.testing.assert_allclose([t["score"] for t in g["top"]], [t["score"] for t in w["top"]], atol=1e-6)
    assert (tmp_path / "timing.cache").read_bytes().startswith(b"FTS-TIMING")
    # verify and bench --model run on the engine
    assert main(["verify", str(d / "student.int8.engine"), "--input", str(video), "--clips", "4", "--runs", "3",
                 "--json-out", str(tmp_path / "verify.json")]) == 0
    rep = json.loads((tmp_path / "verify.json").read_text())
    assert rep["reference"].endswith("student.onnx") and rep["clips"] == 4 and rep["layers"]["convolutions"] > 0
    assert set(rep["latency_ms"]) == {"p50", "p90", "p99"} and rep["passed"]
    assert main(["bench", "--model", str(d / "student.fp16.engine"), "--input", str(video), "--runs", "3",
                 "--out", str(tmp_path / "bench")]) == 0
    b = json.loads((tmp_path / "bench" / "bench_model.json").read_text())
    assert b["stages"]["decode_per_frame"]["p50_ms"] > 0 and b["stages"]["inference_per_window"]["runs"] == 3
    # a second build reuses the engines: same TensorRT, GPU and ONNX
    capsys.readouterr()
    assert main(["build-engine", str(pair), "--fp16"]) == 0
    assert "reused" in capsys.readouterr().out


def test_int8_layers_tensorrt_cannot_build_are_kept_in_fp16_and_built_again(standin, pair, shared_data, monkeypatch,
                                                                            capsys):
    """A failed INT8 build whose errors name convolutions is retried once with those convolutions
    kept in float (quantized and checked again), and says so; a second failure is one line."""
    video = shared_data / "vtest.avi"
    layer = "/layer1/layer1.0/conv1/conv1.0/Conv"
    monkeypatch.setenv("FTS_STANDIN_NO_INT8", layer)
    rc = main(["build-engine", str(pair), "--int8", "--calib-input", str(video), "--calib-clips", "8",
               "--min-agreement", "0"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert f"TensorRT could not build 1 convolution(s) in INT8 ({layer}): quantizing again with them kept in FP16" \
        in out
    q = json.loads(metadata_path(pair.parent / "student.int8.onnx").read_text())["quantization"]
    assert q["kept_in_float"][layer] == "TensorRT could not build it in INT8"
    assert "/stem/stem.0/Conv" in q["kept_in_float"]
    meta = json.loads(metadata_path(pair.parent / "student.int8.engine").read_text())
    assert sorted(meta["layers"]["convolutions_not_int8"]) == sorted(["/stem/stem.0/Conv", layer])
    # one retry only: where the second build fails on another convolution, one line, exit 1
    monkeypatch.setenv("FTS_STANDIN_NO_INT8", "Conv")  # every quantized convolution, the first named each time
    rc = main(["build-engine", str(pair), "--int8", "--calib-input", str(video), "--calib-clips", "8",
               "--min-agreement", "0", "--force"])
    cap = capsys.readouterr()
    assert "quantizing again with them kept in FP16" in cap.out
    assert rc == 1 and "TensorRT could not build the int8 engine: [standin] Error Code 10" in cap.err
    assert cap.err.strip().count("\n") == 0


def test_engine_refused_elsewhere(standin, pair, monkeypatch, capsys):
    from fts_edge.core.errors import EngineError
    from fts_edge.device.engine import build_tensorrt_engine as build_engine
    from fts_edge.device.runtime import load_classifier

    engine = Path(build_engine(pair, "fp16")["engine"])
    load_classifier(engine).close()
    monkeypatch.setenv("FTS_STANDIN_GPU", "NVIDIA GeForce RTX 4090")
    monkeypatch.setenv("FTS_STANDIN_CC", "8.9")
    with pytest.raises(EngineError, match="built for GPU compute capability '8.7', this machine has '8.9'"):
        load_classifier(engine)
    monkeypatch.delenv("FTS_STANDIN_GPU")
    monkeypatch.delenv("FTS_STANDIN_CC")
    monkeypatch.setenv("FTS_STANDIN_TRT_VERSION", "10.7.0.23")
    assert main(["camera", "--input", "synthetic://", "--model", str(engine), "--max-windows", "1"]) == 1
    err = capsys.readouterr().err
    assert "built for TensorRT '10.3.0.26', this machine has '10.7.0.23'" in err and "fts-edge build-engine" in err
    assert err.count("\n") == 1
    monkeypatch.setenv("FTS_STANDIN_TRT_VERSION", "8.6.2.3")
    with pytest.raises(EngineError, match="JetPack 6.1"):
        load_classifier(engine)
    monkeypatch.setenv("FTS_STANDIN_TRT_VERSION", "11.0.0.1")
    with pytest.raises(EngineError, match="tensorrt>=10,<11"):
        build_engine(pair, "fp16", force=True)
    monkeypatch.delenv("FTS_STANDIN_TRT_VERSION")
    blob = bytearray(engine.read_bytes())
    blob[-1] ^= 0xFF
    engine.write_bytes(bytes(blob))
    with pytest.raises(EngineError, match="sha256 differs"):
        load_classifier(engine)


def test_an_engine_from_another_orin_module_is_refused(standin, pair, monkeypatch, tmp_path):
    """Every Orin module is compute capability 8.7 with the same GPU name: the multiprocessor
    count and the board's device-tree model tell an AGX Orin's engine from an Orin Nano's."""
    import fts_edge.device.doctor as doctor
    from fts_edge.core.errors import EngineError
    from fts_edge.device.engine import build_tensorrt_engine as build_engine
    from fts_edge.device.runtime import load_classifier

    release, model = tmp_path / "nv_tegra_release", tmp_path / "model"
    release.write_text("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64\n")
    model.write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\x00")
    monkeypatch.setattr(doctor, "TEGRA_RELEASE", str(release))
    monkeypatch.setattr(doctor, "MODEL_FILES", (str(model),))
    eng = build_engine(pair, "fp16")
    ident = eng["metadata"]["engine"]
    assert (ident["multiprocessors"], ident["memory_mb"], ident["board"]) == \
        (16, 65536, "NVIDIA Jetson AGX Orin Developer Kit")
    load_classifier(eng["engine"]).close()
    monkeypatch.setenv("FTS_STANDIN_SMS", "8")  # an Orin Nano 8 GB: same name, same 8.7
    with pytest.raises(EngineError, match="built for GPU multiprocessor count 16, this machine has 8"):
        load_classifier(eng["engine"])
    monkeypatch.delenv("FTS_STANDIN_SMS")
    model.write_bytes(b"NVIDIA Jetson Orin NX Engineering Reference Developer Kit\x00")
    with pytest.raises(EngineError, match="built for board 'NVIDIA Jetson AGX Orin Developer Kit', this machine "
                                          "has 'NVIDIA Jetson Orin NX"):
        load_classifier(eng["engine"])


def test_dynamic_batch_engine_has_an_optimization_profile(standin, tiny_run, tmp_path):
    from fts_edge.device.engine import build_tensorrt_engine as build_engine
    from fts_edge.device.runtime import load_classifier
    from fts_edge.export.onnx import export_onnx

    rep = export_onnx(tiny_run["student"], tmp_path / "dyn.onnx", dynamic_batch=True)
    eng = build_engine(rep["onnx"], "fp16", max_batch=4)
    assert eng["metadata"]["engine"]["profile"] == {"min_batch": 1, "opt_batch": 1, "max_batch": 4}
    clips = np.random.default_rng(0).standard_normal((6, 3, 4, 24, 24)).astype(np.float32)
    trt_clf, ort_clf = load_classifier(eng["engine"]), load_classifier(rep["onnx"], device="cpu")
    np.testing.assert_allclose(trt_clf.classify(clips), ort_clf.classify(clips), atol=1e-6)  # 6 clips: chunks of 4
    trt_clf.close()


def test_refused_tensorrt_calls_are_errors_not_ignored(standin, pair, tiny_run, tmp_path, monkeypatch):
    """What TensorRT answers with a return value, not an exception, is checked: a refused tensor
    address or optimization profile stops with a message naming it."""
    from fts_edge.core.errors import EngineError
    from fts_edge.device.engine import build_tensorrt_engine as build_engine
    from fts_edge.device.runtime import load_classifier
    from fts_edge.export.onnx import export_onnx

    clf = load_classifier(build_engine(pair, "fp16")["engine"])
    monkeypatch.setenv("FTS_STANDIN_REFUSE", "set_tensor_address")
    with pytest.raises(EngineError, match="refused the device address of tensor clip"):
        clf.classify(np.zeros((1, 3, 4, 24, 24), np.float32))
    clf.close()
    rep = export_onnx(tiny_run["student"], tmp_path / "dyn.onnx", dynamic_batch=True)
    monkeypatch.setenv("FTS_STANDIN_REFUSE", "add_optimization_profile")
    with pytest.raises(EngineError, match=r"refused the optimization profile \(batch 1 to 4 for clip\)"):
        build_engine(rep["onnx"], "fp16", max_batch=4)


def test_a_timing_cache_tensorrt_cannot_use_is_set_aside_not_fatal(standin, pair, tmp_path, monkeypatch, caplog):
    """A timing cache from elsewhere (create_timing_cache gives None) or one TensorRT will not take
    (set_timing_cache gives False) is warned about and the engine is built without it."""
    from fts_edge.device.engine import build_tensorrt_engine as build_engine

    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"a cache from another TensorRT")
    with caplog.at_level("WARNING"):
        rep = build_engine(pair, "fp16", timing_cache=str(cache), force=True)
    assert Path(rep["engine"]).is_file() and "cannot read it; starting an empty one" in caplog.text
    assert cache.read_bytes().startswith(b"FTS-TIMING")  # replaced by this build's
    caplog.clear()
    cache.write_bytes(b"kept as it was")
    monkeypatch.setenv("FTS_STANDIN_REFUSE", "set_timing_cache")
    with caplog.at_level("WARNING"):
        rep = build_engine(pair, "fp16", timing_cache=str(cache), force=True)
    assert Path(rep["engine"]).is_file() and "did not take it; building without one" in caplog.text
    assert cache.read_bytes() == b"kept as it was"


def test_fast_fp16_comes_from_the_compute_capability_not_a_deprecated_call():
    """IBuilder.platform_has_fast_fp16 is deprecated from TensorRT 10.5: the compute capability
    answers instead (every Jetson Orin is 8.7; Pascal's consumer 6.1 has no fast FP16)."""
    from fts_edge.device.engine import fast_fp16

    assert [fast_fp16(cc) for cc in ("8.7", "7.2", "5.3", "6.2", "6.1", "5.2", "9.0", None, "?")] == \
        [True, True, True, True, False, False, True, None, None]
    src = Path(__file__).resolve().parents[1] / "fts_edge" / "device"
    used = {name for _, name, _ in tensorrt_uses((src / "engine.py").read_text())}
    assert "create_builder_config" in used
    assert not {"platform_has_fast_fp16", "platform_has_fast_int8", "platform_has_tf32"} & used


def test_buffers_are_pinned_and_freed(standin, pair):
    from fts_edge.device.engine import build_tensorrt_engine as build_engine
    from fts_edge.device.runtime import load_classifier

    rt = importlib.import_module("cuda.bindings.runtime")
    before = rt.live_allocations()
    clf = load_classifier(build_engine(pair, "fp16")["engine"])
    clf.classify(np.zeros((2, 3, 4, 24, 24), np.float32))
    dev, pinned, streams = rt.live_allocations()
    assert clf.cuda.kind == "cuda-python" and dev > before[0] and pinned > before[1] and streams > before[2]
    clf.close()
    assert rt.live_allocations() == before


def test_cuda_python_with_a_wrong_driver_falls_back_to_pycuda(standin, pair, monkeypatch):
    """cuda-python 13 on JetPack 6 imports, then answers cudaErrorInsufficientDriver: use pycuda,
    and pop its context when done."""
    from fts_edge.device.engine import build_tensorrt_engine as build_engine
    from fts_edge.device.runtime import load_classifier

    path = build_engine(pair, "fp16")["engine"]
    monkeypatch.setenv("FTS_STANDIN_CUDA_ERROR", "35")
    drv = importlib.import_module("pycuda.driver")
    clf = load_classifier(path)
    assert clf.cuda.kind == "pycuda" and len(drv.context_stack()) == 1
    ref = load_classifier(pair, device="cpu")
    x = np.random.default_rng(1).standard_normal((1, 3, 4, 24, 24)).astype(np.float32)
    np.testing.assert_allclose(clf.classify(x), ref.classify(x), atol=1e-6)
    clf.close()
    assert drv.context_stack() == []


def test_no_cuda_at_all_is_one_clear_error(standin, pair, monkeypatch):
    from fts_edge.core.errors import EngineError
    from fts_edge.device.engine import build_tensorrt_engine as build_engine
    from fts_edge.device.runtime import load_classifier

    path = build_engine(pair, "fp16")["engine"]
    monkeypatch.setenv("FTS_STANDIN_CUDA_ERROR", "35")
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    with pytest.raises(EngineError) as e:
        load_classifier(path)
    msg = str(e.value)
    assert "cuda-python does not work here" in msg and "cudaErrorInsufficientDriver" in msg
    assert "pycuda is not installed" in msg and "cuda-python>=12.2,<12.7" in msg and "\n" not in msg


# Real engines' inspector JSON (NVIDIA's trt-engine-explorer ResNet examples built on an A100, in
# ../shared/data/tensorrt/; FTS_EDGE_INSPECTOR_DIR names another folder): what each file must report.
# 21 convolutions each (20 + the classifier as a 1x1 convolution); in the two "residual" engines the
# 3-channel stem is fused with its ReLU and max-pool into one ConvActPool layer, still a convolution.
INSPECTOR_DIR = Path(os.environ.get("FTS_EDGE_INSPECTOR_DIR") or
                     Path(__file__).resolve().parents[2] / "shared" / "data" / "tensorrt")
INSPECTOR_EXPECT = {
    "a100-fp32.graph.json": ({"fp32": 21}, "CaskConvolution", "fp32"),
    "a100-fp16.graph.json": ({"fp16": 21}, "CaskConvolution", "fp16"),
    "a100-qat.graph.json": ({"int8": 21}, "CaskConvolution", "int8"),
    "a100-qat-residual.graph.json": ({"int8": 21}, "ConvActPool", "int8"),
    "a100-qat-residual-qgap.graph.json": ({"int8": 21}, "ConvActPool", "int8"),
}


@pytest.mark.skipif(not INSPECTOR_DIR.parent.is_dir(), reason=f"shared sample data not found at {INSPECTOR_DIR.parent}")
@pytest.mark.parametrize("name", sorted(INSPECTOR_EXPECT))
def test_layer_report_on_real_inspector_output(name):
    """Real engines' inspector JSON: every layer is read, every convolution counted (fused
    ConvActPool layers included) by what its kernel takes in, and the stem's row says so."""
    from fts_edge.device.engine import layer_report, summary_line

    by_precision, stem_type, stem_compute = INSPECTOR_EXPECT[name]
    info = json.loads((INSPECTOR_DIR / name).read_text())
    rep = layer_report(info)
    s = rep["summary"]
    assert s["layers"] == len(info["Layers"]) and s["detail"] == "detailed"
    assert s["convolutions"] == 21 and s["convolutions_by_precision"] == by_precision
    stem = next(r for r in rep["layers"] if r["conv"])
    assert (stem["type"], stem["compute"], stem["inputs"][0]) == (stem_type, stem_compute, stem_compute)
    assert all(r["tactic"] for r in rep["layers"] if r["conv"])
    assert summary_line(s).startswith(f"21 convolutions: 21 {stem_compute};")


# What the variables of the engine and runtime code hold (their TensorRT class), by name
CODE_ROOTS = {"builder": "Builder", "config": "IBuilderConfig", "network": "INetworkDefinition",
              "parser": "OnnxParser", "profile": "IOptimizationProfile", "runtime": "Runtime", "engine": "ICudaEngine",
              "context": "IExecutionContext", "ctx": "IExecutionContext", "tensor": "ITensor"}


def tensorrt_uses(source: str):
    """Every TensorRT name a source uses: (owner class, name, argument count or None for an
    attribute read), for ``trt.Class``, ``trt.Class.Member`` and ``root.member(...)`` where root
    is a variable (or ``self.`` attribute) named in CODE_ROOTS."""
    import ast

    tree = ast.parse(source)
    calls = {id(n.func): len(n.args) + len(n.keywords) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    def is_trt(n):  # trt, or self.trt
        return (isinstance(n, ast.Name) and n.id == "trt") or (
            isinstance(n, ast.Attribute) and n.attr == "trt" and isinstance(n.value, ast.Name) and n.value.id == "self")

    uses = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or is_trt(node):
            continue
        base = node.value
        if is_trt(base):
            uses.append(("tensorrt", node.attr, calls.get(id(node))))
            continue
        if isinstance(base, ast.Attribute) and is_trt(base.value):  # trt.Class.member: a call passes self
            n = calls.get(id(node))
            uses.append((base.attr, node.attr, None if n is None else n - 1))
            continue
        root = base.attr if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and \
            base.value.id == "self" else base.id if isinstance(base, ast.Name) else None
        if root in CODE_ROOTS:
            uses.append((CODE_ROOTS[root], node.attr, calls.get(id(node))))
    return uses


def api_problems(uses):
    """The uses whose owner lacks the name, or whose call fits no signature of it."""
    out = []
    for owner, name, nargs in uses:
        if owner == "tensorrt":
            if name not in TRT_API["classes"] and name not in TRT_API["functions"] and name != "__version__":
                out.append(f"tensorrt.{name}")
            continue
        real = trt_member(owner, name)
        if real is None:
            out.append(f"{owner}.{name}: no such member")
        elif nargs is not None and real["kind"] == "method" and not arity_fits(real, nargs):
            out.append(f"{owner}.{name}: {nargs} arguments, TensorRT takes {real['signatures'][0]['params'][1:]}")
    return out


def test_the_code_calls_tensorrt_as_tensorrt_10_3_defines_it():
    """Beyond what the tests run: every TensorRT name in the engine and runtime code is a member of
    the class that owns it in TensorRT 10.3, called with an arity one of its signatures takes; and
    every rt.X in the CUDA code is a name of cuda-python 12.6."""
    src = Path(__file__).resolve().parents[1] / "fts_edge" / "device"
    uses = tensorrt_uses((src / "engine.py").read_text()) + tensorrt_uses((src / "runtime.py").read_text())
    names = {(o, n) for o, n, _ in uses}
    assert {("tensorrt", "Builder"), ("BuilderFlag", "FP16"), ("IBuilderConfig", "set_timing_cache"),
            ("IExecutionContext", "set_tensor_address"), ("IExecutionContext", "execute_async_v3"),
            ("ILogger", "ERROR"), ("IBuilderConfig", "add_optimization_profile")} <= names
    assert not api_problems(uses)
    import ast

    cuda_real = _names(DATA / "cuda-python-12.6.2-runtime-names.txt")
    used = {node.attr for node in ast.walk(ast.parse((src / "cudamem.py").read_text()))
            if isinstance(node, ast.Attribute) and ((isinstance(node.value, ast.Name) and node.value.id == "rt") or (
                isinstance(node.value, ast.Attribute) and node.value.attr == "rt"))}
    assert {"cudaMalloc", "cudaMallocHost", "cudaMemcpyAsync", "cudaFreeHost"} <= used
    assert not sorted(n for n in used if n not in cuda_real)


def test_the_api_check_fails_on_a_wrong_owner_or_arity():
    """The check itself: a method called on a class that does not own it, one called with the
    wrong number of arguments, and an enum member TensorRT lacks are each reported."""
    bad = """
def build(trt, self, profile):
    self.context.add_optimization_profile(profile)        # IBuilderConfig's, not the context's
    self.config.set_timing_cache(cache)                   # takes (cache, ignore_mismatch)
    self.config.set_flag(trt.BuilderFlag.INT16)           # no such flag
    self.config.set_timing_cache(cache, True)             # right
"""
    problems = api_problems(tensorrt_uses(bad))
    assert problems == ["IExecutionContext.add_optimization_profile: no such member",
                        "IBuilderConfig.set_timing_cache: 1 arguments, TensorRT takes "
                        "[{'default': False, 'name': 'cache'}, {'default': False, 'name': 'ignore_mismatch'}]",
                        "BuilderFlag.INT16: no such member"]


@pytest.mark.parametrize("edit,message", [
    (lambda m: m.update(classes=m["classes"][::-1]), "disagree on classes"),
    (lambda m: m["clip_spec"].update(mean=[0.5, 0.5, 0.5]), "disagree on clip_spec.mean"),
    (lambda m: m.update(role="teacher"), "says role 'teacher'"),
])
def test_an_engine_json_that_lies_is_refused_by_every_command(standin, pair, capsys, edit, message):
    """An engine holds no metadata of its own: its JSON is bound to it by sha256, and where the ONNX
    it was built from is at hand, must say what that ONNX's own bundle says."""
    import json

    from fts_edge.core.errors import FtsError
    from fts_edge.device.bundle import metadata_path
    from fts_edge.device.engine import build_tensorrt_engine
    from fts_edge.device.runtime import load_classifier

    engine = Path(build_tensorrt_engine(pair, "fp16")["engine"])
    meta = json.loads(metadata_path(engine).read_text())
    edit(meta)  # the sha256 of the engine stays true
    metadata_path(engine).write_text(json.dumps(meta))
    with pytest.raises(FtsError, match=message):
        load_classifier(engine)
    for argv in (["camera", "--input", "synthetic://", "--max-windows", "1", "--model", str(engine)],
                 ["verify", str(engine), "--against", str(pair), "--clips", "2", "--runs", "1"],
                 ["bench", "--model", str(engine), "--runs", "1", "--warmup", "0", "--out", str(pair.parent / "b")]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
