"""The demo's stages at quick size, an interrupted demo resuming, and its report."""
import json
from dataclasses import replace

import pytest

from fts_edge.demo import QUICK, Demo, summary_text
from fts_edge.nets.checkpoint import load_checkpoint

TINY = replace(QUICK, per_class=6, classes=4, video_frames=8, video_size=32, frames=4, size=24, resize=28, epochs=2,
               teacher_epochs=2, batch_size=4)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    said = []
    res = Demo(str(out), TINY, say=said.append).run()
    return out, res, said


def test_every_stage_ran_and_left_its_artifacts(demo_run):
    out, res, said = demo_run
    state = json.loads((out / "state.json").read_text())
    assert list(state["stages"]) == ["data", "flow", "teacher", "student", "table", "export", "camera", "speed",
                                     "report"]
    for f in ("teacher/best.pt", "student/best.pt", "rgb/best.pt", "table/table.md", "engines/student.onnx",
              "engines/student.onnx.json", "engines/student.int8.onnx", "engines/student.int8.cpu.onnx",
              "camera.jsonl", "report.md", "teacher/curves.png"):
        assert (out / f).exists(), f
    methods = [r["method"] for r in res["table"]["rows"]]
    assert methods == ["RGB", "flow (teacher)", "two-stream", "distilled student"]
    assert res["deploy"]["parity"]["top1_agreement"] == 1.0
    assert res["camera"]["classifications"] > 0 and list((out / "flow").glob("*.png"))
    assert res["speed"]["best_student_speedup"] > 1.0
    report = (out / "report.md").read_text()
    assert "| distilled student |" in report and "confusion_" in report and "curves.png" in report
    agreement = res["deploy"]["int8"]["cpu"]["check"]["top1_agreement"]
    for said_in_report in (f"Seed {TINY.seed}.", f"Chance level: {100 / TINY.classes:.1f} %", "- machine: ",
                           "- versions: ", "torch ", "ONNX `student.onnx` vs PyTorch",
                           "`student.int8.cpu.onnx` vs fp32 on", f"top-1 agreement {agreement:.1%}",
                           "the flow teacher, run beside it", "colour key", "Best student speed-up"):
        assert said_in_report in report, said_in_report
    text = summary_text(out, res)
    assert "fts-edge build-engine" in text and "fts-edge camera --input /dev/video0" in text
    assert "distilled student vs two-stream" in text and "fts-edge demo --epochs 30" in text


def test_an_interrupted_demo_resumes_from_finished_stages(demo_run, tmp_path):
    out, res, _ = demo_run
    state = json.loads((out / "state.json").read_text())
    # simulate an interruption after the table: forget the later stages
    for later in ("export", "camera", "speed", "report"):
        state["stages"].pop(later)
    (out / "state.json").write_text(json.dumps(state))
    said = []
    Demo(str(out), TINY, say=said.append).run()
    resumed = [s for s in said if "already done (resumed)" in s]
    assert len(resumed) == 5 and any("[5/9] table" in s for s in resumed)
    assert any(s.startswith("[6/9] export ...") for s in said)


def test_other_settings_in_the_same_folder_are_refused_naming_each(demo_run):
    from fts_edge.core.errors import FtsError

    out, _, _ = demo_run
    with pytest.raises(FtsError, match=r"other settings: lr 0.001 \(now 0.01\), mimic \"correlation\" \(now \"mse\"\)"):
        Demo(str(out), replace(TINY, lr=0.01, mimic="mse"))
    with pytest.raises(FtsError, match="epochs 2 \\(now 1\\); epochs can only grow"):
        Demo(str(out), replace(TINY, epochs=1))


def test_more_epochs_in_a_finished_folder_train_on_from_the_stage_they_change(demo_run, tmp_path):
    import shutil

    out, _, _ = demo_run
    copy = tmp_path / "demo"
    shutil.copytree(out, copy)
    said = []
    d = Demo(str(copy), replace(TINY, epochs=3), say=said.append)
    assert set(d.state["stages"]) == {"data", "flow", "teacher"}  # the students (and all after them) train on
    assert said and "epochs 2 -> 3: training on" in said[0]
    assert (copy / "student" / "last.pt").exists()
    d = Demo(str(copy), replace(TINY, teacher_epochs=TINY.teacher_epochs + 1), say=said.append)
    assert set(d.state["stages"]) == {"data", "flow"}
    # the student learnt from the shorter-trained teacher: set aside, so it trains again from the start
    # instead of resuming (or, finished, being kept) as if the teacher had not changed
    assert not (copy / "student").exists() and (copy / "student.before-teacher_epochs" / "last.pt").exists()
    assert any("set aside: student/ -> student.before-teacher_epochs/" in s for s in said)


def test_a_demo_saved_before_a_setting_existed_resumes_only_under_the_value_it_ran_with(tmp_path):
    from fts_edge.core.errors import FtsError
    from fts_edge.demo import LEGACY_SETTINGS, DemoConfig

    old = {k: v for k, v in TINY.__dict__.items() if k not in LEGACY_SETTINGS}
    (tmp_path / "state.json").write_text(json.dumps({"config": old, "stages": {}}))
    Demo(str(tmp_path), replace(TINY, **LEGACY_SETTINGS))  # what it ran with: resumes
    for key, was in LEGACY_SETTINGS.items():
        now = getattr(DemoConfig, key)
        assert now != was, f"{key}: the legacy value is the default, so an old folder would resume under it"
        with pytest.raises(FtsError, match="other settings"):
            Demo(str(tmp_path), replace(TINY, **{**LEGACY_SETTINGS, key: now}))


def test_summary_flags_a_lead_inside_the_noise():
    from fts_edge.demo import lead_caveat, noise_points

    near_chance = ({"top1": 13.0, "n": 100}, {"top1": 8.0, "n": 100})
    assert 8 < noise_points(*near_chance) < 9.5  # 2 standard errors of a difference of two 100-clip figures
    assert "within the noise" in lead_caveat(*near_chance)
    assert lead_caveat({"top1": 60.0, "n": 100}, {"top1": 20.0, "n": 100}) == ""
    assert "within the noise" in lead_caveat({"top1": 60.0, "n": 10}, {"top1": 40.0, "n": 10})  # few clips: wide band


@pytest.mark.research
def test_alpha_sweep_trains_one_student_per_alpha_on_its_own_data(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "research" / "sweep_alpha.py"
    spec = importlib.util.spec_from_file_location("sweep_alpha", path)
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    out = tmp_path / "sweep"
    assert sweep.main(["--out", str(out), "--alphas", "0,5", "--epochs", "1", "--data-seed", "7"], cfg=TINY) == 0
    res = json.loads((out / "sweep.json").read_text())
    assert [r["alpha"] for r in res["rows"]] == [0.0, 5.0] and res["data_seed"] == 7
    assert res["rows"][0]["train_mse"] == 0 and res["rows"][1]["train_mse"] > 0  # alpha 0 is the RGB baseline
    assert json.loads((out / "state.json").read_text())["config"]["seed"] == 7  # its own data, not the table's
    assert "| 5 |" in (out / "sweep.md").read_text()
    fit = res["rows"][1]["mimic_fit"]  # the student's fit to the teacher's features, on real clips
    assert res["rows"][0]["mimic_fit"] is None and fit["clips"] > 1 and fit["split"] == "val"
    assert fit["var_ratio"] >= 0 and fit["r2"] <= 1 and fit["mse"] > 0
    from fts_edge.train.evaluate import student_mimic_fit
    cache = {}
    fits = [student_mimic_fit(str(out / "alpha-5" / "last.pt"), str(out / "teacher" / "last.pt"), max_clips=8,
                              cache=cache) for _ in range(2)]
    assert len(cache) == 1 and fits[0] == fits[1]  # the teacher's features computed once, the same answer
    # run again: everything is kept, nothing retrained
    before = (out / "alpha-5" / "last.pt").stat().st_mtime_ns
    assert sweep.main(["--out", str(out), "--alphas", "0,5", "--epochs", "1", "--data-seed", "7"], cfg=TINY) == 0
    assert (out / "alpha-5" / "last.pt").stat().st_mtime_ns == before
    # a sweep folder made under other demo-level alpha/mimic defaults still resumes: the students set their own
    assert (
        sweep.main(
            ["--out", str(out), "--alphas", "0,5", "--epochs", "1", "--data-seed", "7"],
            cfg=replace(TINY, alpha=TINY.alpha + 1, mimic="mse" if TINY.mimic != "mse" else "correlation"),
        )
        == 0
    )
    assert (out / "alpha-5" / "last.pt").stat().st_mtime_ns == before
    again = json.loads((out / "sweep.json").read_text())["rows"][1]
    assert again["seconds"] == res["rows"][1]["seconds"] > 0  # training time from the log, not the re-run's
    # the correlation mimic beside the MSE students, on the same data and teacher
    assert sweep.main(["--out", str(out), "--alphas", "5", "--epochs", "1", "--data-seed", "7",
                       "--mimic", "correlation"], cfg=TINY) == 0
    corr = json.loads((out / "sweep-correlation.json").read_text())
    assert corr["mimic"] == "correlation" and corr["rows"][0]["mimic"] == "correlation"
    assert (out / "alpha-5-correlation" / "last.pt").exists()
    assert (out / "alpha-5" / "last.pt").stat().st_mtime_ns == before
    # extending the sweep with another alpha adds its row to the saved table and keeps the earlier ones
    assert sweep.main(["--out", str(out), "--alphas", "2", "--epochs", "1", "--data-seed", "7"], cfg=TINY) == 0
    extended = json.loads((out / "sweep.json").read_text())["rows"]
    assert [r["alpha"] for r in extended] == [0.0, 2.0, 5.0] and extended[2] == again
    assert "| 2 |" in (out / "sweep.md").read_text() and "| 5 |" in (out / "sweep.md").read_text()
    assert "kept from earlier runs in this folder: alpha 0, 5" in capsys.readouterr().out
    capsys.readouterr()
    assert sweep.main(["--out", str(out), "--alphas", "x"], cfg=TINY) == 2
    assert "--alphas takes numbers" in capsys.readouterr().err


def test_the_documented_script_recipe_trains_exactly_what_the_demo_trains():
    """The "demo's table with the scripts" block of docs/results.md, parsed with the scripts' own
    argument parser, gives the same training settings as the demo's stages (the streaming stage's
    two included): when a default changes (alpha, mimic, epochs), this fails until the page says
    the same."""
    import argparse
    import dataclasses
    import re
    import shlex
    from pathlib import Path

    from fts_edge.demo import DemoConfig
    from fts_edge.train.cli import add_train_args, config_from_args

    text = (Path(__file__).resolve().parents[1] / "docs" / "results.md").read_text().replace("\\\n", " ")
    m = re.search(r'^M="([^"]+)"$', text, re.M)
    assert m, "docs/results.md's recipe (M=...) is missing"
    lines = [ln.replace("$M",
                        m.group(1)) for ln in text.splitlines() if ln.startswith("python train/train_") and "$M" in ln]
    demo = Demo.__new__(Demo)  # only its settings: nothing written
    demo.cfg, demo.out = DemoConfig(), Path("runs/m")
    demo.recipe, demo.seed = demo.cfg.recipe, demo.cfg.seed
    synth = re.search(r"^fts-edge data synth \S+ --per-class (\d+) --frames (\d+) --size (\d+)$", text, re.M)
    assert synth and tuple(map(int, synth.groups())) == (demo.cfg.per_class, demo.cfg.video_frames, demo.cfg.video_size)
    ignore = {"out", "root", "flow_cache", "teacher", "device", "threads"}
    seen = set()
    for line in lines:
        argv = shlex.split(line)
        script = argv[1].split("/")[-1]
        role = "teacher" if script == "train_teacher.py" else "student"
        p = argparse.ArgumentParser()
        add_train_args(p, role)
        got = config_from_args(p.parse_args(argv[2:]), role)
        if got.model == "causal_r3d_18":  # the streaming stage: the teacher's causal copy, the streaming student
            want = demo.streaming_cfgs()[got.role == "student"]
        else:
            want = demo.train_cfg(got.role, **({"alpha": 0.0} if got.role == "rgb" else
                                               {"teacher": "t.pt"} if got.role == "student" else {}))
        diff = {f.name: (getattr(got, f.name), getattr(want, f.name)) for f in dataclasses.fields(got)
                if f.name not in ignore and getattr(got, f.name) != getattr(want, f.name)}
        assert not diff, f"docs/results.md line `{line[:60]}...` differs from the demo (page, demo): {diff}"
        seen.add((got.role, got.model))
    assert seen == {("teacher", "r3d_18"), ("student", "r3d_18"), ("rgb", "r3d_18"),
                    ("teacher", "causal_r3d_18"), ("student", "causal_r3d_18")}


def test_demo_streaming_adds_the_streaming_student_to_a_finished_demo(demo_run, tmp_path):
    import shutil

    out, _, _ = demo_run
    copy = tmp_path / "demo"
    shutil.copytree(out, copy)
    said = []
    res = Demo(str(copy), TINY, say=said.append, streaming=True).run()
    s = res["streaming"]
    assert [line for line in said if "already done" in line and "teacher" in line]  # the teacher is reused
    assert 0 <= s["top1"] <= 100 and s["n"] == res["table"]["rows"][0]["n"]  # the same validation clips
    assert 0 <= s["causal_flow_top1"] <= 100 and (copy / "causal_flow" / "last.pt").exists()  # its starting blocks
    ck = load_checkpoint(copy / "streaming" / "last.pt")
    assert ck["config"]["teacher"] == str(copy / "teacher" / "last.pt")  # the clip student's teacher
    assert ck["config"]["init_from"] == str(copy / "causal_flow" / "last.pt")
    assert TINY.hint and ck["config"]["hint"] == TINY.hint  # the clip student's hint, on the copy's maps
    assert ck["config"]["hint_from"] == str(copy / "causal_flow" / "last.pt")
    assert s["parity"]["max_rel_diff"] < 1e-4 and (copy / "engines" / "streaming.onnx").exists()
    state = json.loads((copy / "state.json").read_text())
    assert state["stages"]["streaming"]["top1"] == s["top1"]
    assert "## Streaming student" in (copy / "report.md").read_text()
    assert "streaming student (one step a frame)" in summary_text(copy, res)


def test_a_demo_saved_before_the_robustness_options_resumes_with_them_off(tmp_path):
    """A state.json without flow_camera, flow_illumination, augment_light, augment_shake ran with
    them off: it resumes with them off and is refused under today's defaults (affine, normalize),
    naming the difference, rather than continued on another teacher's flow."""
    from fts_edge.core.errors import FtsError
    from fts_edge.pipeline import ADDED_RECIPE

    assert (TINY.flow_camera, TINY.flow_illumination) == ("affine", "normalize")
    old = {k: v for k, v in TINY.__dict__.items() if k not in ADDED_RECIPE}
    (tmp_path / "state.json").write_text(json.dumps({"config": old, "stages": {}}))
    Demo(str(tmp_path), replace(TINY, flow_camera="none", flow_illumination="none"))
    with pytest.raises(FtsError, match="flow_camera"):
        Demo(str(tmp_path), TINY)
