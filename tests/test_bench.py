import json

import torch

from fts_edge.bench import pipeline as bench


def test_bench_measures_every_present_path_and_skips_the_rest(tmp_path, capsys):
    res = bench.run(widths=(0.125,), frames=4, size=24, warmup=1, runs=2, out=str(tmp_path), classes=5)
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert (tmp_path / "bench.png").exists() and saved["input"] == [1, 3, 4, 24, 24]
    timed = [p for p in res["paths"] if "inference" in p]
    assert {(p["backend"], p["precision"]) for p in timed} >= {("torch-cpu", "fp32"), ("onnxruntime-cpu", "fp32"),
                                                               ("onnxruntime-cpu", "int8-cpu")}
    for p in timed:
        i = p["inference"]
        assert i["min_ms"] <= i["median_ms"] <= i["max_ms"] and p["clips_per_s"] > 0 and p["fraction_of_peak"] > 0
        assert p["end_to_end_ms"] > i["median_ms"]
    skipped = {p["backend"]: p["skipped"] for p in res["paths"] if "skipped" in p}
    if not torch.cuda.is_available():
        assert "no CUDA GPU" in skipped["torch-cuda"]
    assert all(reason for reason in skipped.values())
    ts = res["two_stream_vs_student"]
    assert ts["pairs"] == 3 and all(v > 0 for v in ts["speedup_vs_opencv_two_stream"].values())
    for stage in ("preprocess_per_frame", "postprocess", "decode_per_frame"):
        assert stage in res["live_stages"] or stage == "decode_per_frame"
    assert res["environment"]["cpus"] >= 1 and "torch" in res["environment"]["versions"]
    bench.print_table(res)
    assert "two-stream vs student" in capsys.readouterr().out
