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


def test_bench_train_measures_each_stage_and_extrapolates(tmp_path, capsys):
    from fts_edge.bench import train as bench_train
    from fts_edge.data.synthetic import write_motion_dataset

    write_motion_dataset(tmp_path / "set", 3, 0, 4, 24, 48, 64, val_fraction=0.0)
    res = bench_train.run(str(tmp_path / "out"), data=str(tmp_path / "set"), geometries=("demo",), workers=(0, 1),
                          steps=2, batch=2, runs=1, say=lambda *_: None)
    saved = json.loads((tmp_path / "out" / "bench_train.json").read_text())
    g = saved["geometries"]["demo"]
    assert saved["set"] == {"folder": str(tmp_path / "set"), "videos": 12, "classes": 4}
    assert g["decode"]["clips_per_s"] > 0 and g["augment"]["clips_per_s"] > 0
    assert g["flow"]["cpu"]["pairs_per_s"] > 0 and g["flow"]["cpu"]["frame"] == [64, 85]
    assert g["steps"]["cpu-fp32"]["student"]["clips_per_s"] > 0 and g["flow_store_mb_a_video"] > 0
    assert [p["workers"] for p in g["pipeline"]] == [0, 1]
    for p in g["pipeline"]:
        assert p["steps"] == 2 and p["loader_clips_per_s"] > 0 and 0 <= p["wait_share"] <= 1
    ex = g["extrapolation"]
    # the flow store grows with the dataset's frames: UCF101 has about 3.8 times HMDB51's
    ratio = ex["UCF101"]["flow_store_gb"] / ex["HMDB51"]["flow_store_gb"]
    assert abs(ratio - 13320 * 186 / (6766 * 96)) < 1e-6
    step = g["steps"]["cpu-fp32"]["student"]["clips_per_s"]
    pipe = max(p["loader_clips_per_s"] for p in g["pipeline"])
    assert abs(ex["HMDB51"]["epoch_s_cpu"] - 3570 / min(step, pipe)) < 1e-6
    assert res["peak_rss_mb"] > 0
    bench_train.print_report(res)
    out = capsys.readouterr().out
    assert "HMDB51: an epoch" in out and "UCF101" in out
