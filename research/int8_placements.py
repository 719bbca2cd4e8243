"""Two INT8 placements for TensorRT side by side on one trained student, in ONNX Runtime.

    python research/int8_placements.py runs/demo [--clips 128] [--out runs/demo/int8_placements.json]

- fts-edge's own (fts_edge.quantize, flavour "tensorrt"): ONNX Runtime's QDQ quantizer told to
  quantize only the inputs of Conv/Gemm, symmetric per-channel weights, no output Q/DQ.
- NVIDIA's Model Optimizer (``modelopt.onnx.quantization.quantize``, int8, max calibration, the
  unquantized remainder in fp16), where it is installed (pip install "nvidia-modelopt[onnx]").

Both calibrate on the same training clips of the demo's dataset and are judged on its validation
split: Q/DQ node counts, which ops read quantized tensors, top-1 agreement with fp32, validation
top-1 of each. Prints a table and saves JSON.
"""
import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np


def qdq_profile(path):
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(path)).graph
    inits = {i.name for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    q = [n for n in g.node if n.op_type == "QuantizeLinear"]
    dq = [n for n in g.node if n.op_type == "DequantizeLinear"]

    def from_weight(n):  # a Q or DQ whose data is a constant (a weight), possibly through a Q
        src = n.input[0]
        while src in producer and producer[src].op_type in ("QuantizeLinear", "Cast"):
            src = producer[src].input[0]
        return src in inits

    dq_out = {n.output[0]: n for n in dq}
    reads = Counter(n.op_type for n in g.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
                    for i in n.input[:1] if i in dq_out and not from_weight(dq_out[i]))
    weights = {numpy_helper.to_array(i).dtype.name for i in g.initializer if i.name in {n.input[0] for n in dq}}
    return {
        "QuantizeLinear": len(q),
        "DequantizeLinear": len(dq),
        "activation_qdq": sum(1 for n in dq if not from_weight(n)),
        "weight_dq": sum(1 for n in dq if from_weight(n)),
        "ops_reading_quantized_activations": dict(reads),
        "float_types": sorted({onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type) for v in g.value_info}),
        "weight_storage": sorted(weights),
    }


def evaluate(fp32, int8, clips, labels):
    from fts_edge.device.onnxrt import ort_session, run_onnx

    ref = run_onnx(ort_session(fp32, ["CPUExecutionProvider"]), clips)
    s = ort_session(int8, ["CPUExecutionProvider"])
    t = time.perf_counter()
    got = run_onnx(s, clips)
    return {"top1_agreement_with_fp32": float((ref.argmax(1) == got.argmax(1)).mean()),
            "max_abs_logit_diff": float(np.abs(ref - got).max()),
            "fp32_val_top1": float((ref.argmax(1) == labels).mean() * 100),
            "int8_val_top1": float((got.argmax(1) == labels).mean() * 100),
            "onnxruntime_cpu_ms_per_clip": (time.perf_counter() - t) * 1000 / len(clips)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo", help="a finished demo folder (runs/demo)")
    ap.add_argument("--clips", type=int, default=128, help="calibration clips (default 128)")
    ap.add_argument("--out", help="JSON report (default DEMO/int8_placements.json)")
    a = ap.parse_args(argv)
    from fts_edge.data.clips import calibration_clips, validation_set
    from fts_edge.data.clipspec import ClipSpec
    from fts_edge.device.bundle import read_bundle_of
    from fts_edge.device.quantize import quantize_int8

    demo = Path(a.demo)
    fp32 = demo / "engines" / "student.onnx"
    meta = read_bundle_of(fp32)
    spec = ClipSpec.from_dict(meta["clip_spec"])
    calib = calibration_clips(spec, meta, None, None, a.clips)
    vx, vy = validation_set(spec, meta, limit=1000)
    work = demo / "int8_placements"
    work.mkdir(exist_ok=True)
    rows = {}
    ours = quantize_int8(fp32, calib, work / "fts_edge.int8.onnx", flavor="tensorrt")
    rows["fts-edge (Q/DQ on Conv/Gemm inputs)"] = {"onnx": ours["int8_onnx"], **qdq_profile(ours["int8_onnx"]),
                                                   **evaluate(fp32, ours["int8_onnx"], vx, vy)}
    try:
        from modelopt.onnx.quantization import quantize as modelopt_quantize
    except ImportError as e:
        rows["Model Optimizer"] = {"skipped": f"nvidia-modelopt[onnx] is not importable here ({e})"}
    else:
        out = work / "modelopt.int8.onnx"
        modelopt_quantize(str(fp32), quantize_mode="int8", calibration_data={"clip": calib}, calibration_method="max",
                          calibration_eps=["cpu"], output_path=str(out), high_precision_dtype="fp16",
                          log_level="WARNING")
        rows["Model Optimizer (int8, max, fp16 remainder)"] = {"onnx": str(out), **qdq_profile(out),
                                                               **evaluate(fp32, out, vx, vy)}
    report = {"model": str(fp32), "calibration_clips": int(len(calib)), "validation_clips": int(len(vx)), "rows": rows}
    path = Path(a.out) if a.out else demo / "int8_placements.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"{fp32}: calibrated on {len(calib)} training clips, judged on {len(vx)} validation clips "
          "(ONNX Runtime, CPU)")
    keys = ("activation_qdq", "weight_dq", "top1_agreement_with_fp32", "fp32_val_top1", "int8_val_top1",
            "max_abs_logit_diff", "onnxruntime_cpu_ms_per_clip")
    print("| placement | " + " | ".join(keys) + " | ops reading int8 activations |")
    print("|---" * (len(keys) + 2) + "|")
    for name, r in rows.items():
        if "skipped" in r:
            print(f"| {name} | skipped: {r['skipped']} |")
            continue
        vals = [f"{r[k]:.3g}" if isinstance(r[k], float) else str(r[k]) for k in keys]
        print(f"| {name} | " + " | ".join(vals) + f" | {r['ops_reading_quantized_activations']} |")
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
