"""Training habits: resume after SIGKILL to the same weights, torchrun (gloo) equals one process,
the scripts run unchanged on the HMDB51 and UCF101 layouts, and the log/curves/checkpoints exist."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fts_edge.nets.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "synthetic", "--frames", "4", "--size", "24", "--resize", "28", "--width", "0.125",
        "--threads", "1", "--warmup-epochs", "0"]


def _script(name, *args, env=None):
    return [sys.executable, str(ROOT / "train" / name), *args]


def _same_weights(a, b, atol=0.0):
    sa, sb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype, k
        assert torch.allclose(sa[k], sb[k], atol=atol, rtol=0), (k, float((sa[k] - sb[k]).abs().max()))


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path):
    data = tmp_path / "motion"
    subprocess.run([sys.executable, "-m", "fts_edge", "data", "synth", str(data), "--per-class", "10", "--classes", "4",
                    "--frames", "8", "--size", "32"], check=True, capture_output=True)
    args = TINY + ["--root", str(data), "--epochs", "4", "--batch-size", "4", "--alpha", "0"]
    full = subprocess.run(_script("train_student.py", *args, "--out", str(tmp_path / "full")), capture_output=True,
                          text=True)
    assert full.returncode == 0, full.stderr
    run = tmp_path / "killed"
    p = subprocess.Popen(_script("train_student.py", *args, "--out", str(run)), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    # kill it once epoch 1 is saved and epoch 2 is under way
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "last.pt").exists():
        time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL)
    p.wait()
    ck = load_checkpoint(run / "last.pt")
    assert 1 <= ck["epoch"] < 4, "the kill should land mid-run"
    again = subprocess.run(_script("train_student.py", *args, "--out", str(run)), capture_output=True, text=True)
    assert again.returncode != 0 and "--resume" in again.stderr  # never clobbers a run silently
    res = subprocess.run(_script("train_student.py", *args, "--out", str(run), "--resume"), capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    _same_weights(run / "last.pt", tmp_path / "full" / "last.pt")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {r["epoch"] for r in rows} == {1, 2, 3, 4}
    assert (run / "curves.png").exists() and (run / "best.pt").exists() and (run / "best.json").exists()


@pytest.mark.skipif(not shutil.which("torchrun"), reason="torchrun is not on PATH")
@pytest.mark.parametrize("student", ["rgb", "correlation"])
def test_torchrun_two_processes_match_one_process(tmp_path, student):
    data = tmp_path / "motion"
    subprocess.run([sys.executable, "-m", "fts_edge", "data", "synth", str(data), "--per-class", "4", "--classes", "4",
                    "--frames", "6", "--size", "32"], check=True, capture_output=True)
    # 12 training clips: 3 steps of a global batch of 4, split 2 + 2 over the processes. In float64: what
    # is checked is the algorithm (statistics over the global batch), not float32 rounding, whose
    # summation order depends on the CPU's kernels (oneDNN picks other blockings for a batch of 2
    # than of 4 on AVX-512: 1.4e-4 there after 3 steps, 2.3e-5 on AVX2).
    common = TINY + ["--root", str(data), "--epochs", "1", "--batch-size", "4", "--lr", "0.05", "--precision", "fp64"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if student == "rgb":
        common += ["--alpha", "0"]
    else:  # the correlation mimic z-scores features over the batch: the global one, not each process's half
        teacher = subprocess.run(_script("train_teacher.py", *common, "--out", str(tmp_path / "teacher")),
                                 capture_output=True, text=True, env=env)
        assert teacher.returncode == 0, teacher.stderr
        common += ["--alpha", "10", "--mimic", "correlation", "--teacher", str(tmp_path / "teacher" / "last.pt")]
    one = subprocess.run(_script("train_student.py", *common, "--out", str(tmp_path / "one")), capture_output=True,
                         text=True, env=env)
    assert one.returncode == 0, one.stderr
    two = subprocess.run(["torchrun", "--standalone", "--nproc_per_node", "2", str(ROOT / "train" / "train_student.py"),
                          *common, "--out", str(tmp_path / "two")], capture_output=True, text=True, env=env)
    assert two.returncode == 0, two.stderr[-2000:]
    # The bound: float64 rounding (unit roundoff 1.1e-16) amplified through 3 steps. Measured on AVX2: RGB
    # 8.4e-15 (float32 there: 2.3e-5, i.e. an amplification of ~400; AVX-512's float32 1.4e-4 means
    # ~2,300). 1e-9 allows an amplification of 1e7, and is 8 orders below what the bugs give in float64:
    # per-process BatchNorm 0.26, a correlation mimic over each process's half 0.2.
    _same_weights(tmp_path / "one" / "last.pt", tmp_path / "two" / "last.pt", atol=1e-9)


@pytest.mark.parametrize("layout", ["hmdb51", "ucf101"])
def test_scripts_run_unchanged_on_official_layouts(layout, hmdb_fixture, ucf_fixture, tmp_path):
    fx = hmdb_fixture if layout == "hmdb51" else ucf_fixture
    data = ["--dataset", layout, "--root", str(fx["root"]), "--splits", str(fx["splits"])]
    args = TINY + data + ["--epochs", "1", "--batch-size", "2"]
    t = subprocess.run(_script("train_teacher.py", *args, "--out", str(tmp_path / "teacher")), capture_output=True,
                       text=True)
    assert t.returncode == 0, t.stderr
    s = subprocess.run(_script("train_student.py", *args, "--teacher", str(tmp_path / "teacher" / "best.pt"),
                               "--out", str(tmp_path / "student")), capture_output=True, text=True)
    assert s.returncode == 0, s.stderr
    r = subprocess.run(_script("train_student.py", *args, "--alpha", "0", "--out", str(tmp_path / "rgb")),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    e = subprocess.run(
        _script(
            "evaluate.py",
            "--rgb",
            str(tmp_path / "rgb" / "best.pt"),
            "--teacher",
            str(tmp_path / "teacher" / "best.pt"),
            "--student",
            str(tmp_path / "student" / "best.pt"),
            *data,
            "--out",
            str(tmp_path / "table"),
        ),
        capture_output=True,
        text=True,
    )
    assert e.returncode == 0, e.stderr
    table = json.loads((tmp_path / "table" / "table.json").read_text())
    assert [r["method"] for r in table["rows"]] == ["RGB", "flow (teacher)", "two-stream", "distilled student"]
    assert all(0 <= r["top1"] <= 100 for r in table["rows"])
    assert len(list((tmp_path / "table").glob("confusion_*.png"))) == 4
    assert set(table["diagnostics"]["agreement"]) == {"RGB / flow (teacher)", "RGB / distilled student",
                                                      "flow (teacher) / distilled student"}
    assert "agreement RGB / flow (teacher)" in e.stdout
    assert "distilled student - two-stream:" in e.stdout
    assert all(r["top1_ci95"][0] <= r["top1"] <= r["top1_ci95"][1] for r in table["rows"])
    ck = load_checkpoint(tmp_path / "student" / "best.pt")
    assert ck["classes"] == fx["classes"] and ck["clip_spec"]["frames"] == 4
    assert {"model", "optimizer", "scheduler", "epoch", "best_metric", "config", "clip_spec", "classes"} <= set(ck)


def test_a_finished_run_fitted_again_reports_what_its_last_epoch_did(tmp_path):
    """Resuming a finished run trains nothing and gives the same summary, the last epoch's top-1
    included (a demo stage that reuses a finished run reports it, not the best epoch's)."""
    from conftest import TINY as SETTINGS

    from fts_edge.train.loop import TrainConfig, fit

    cfg = TrainConfig.from_settings(dict(SETTINGS, role="rgb", alpha=0.0, out=str(tmp_path / "rgb")))
    first = fit(cfg)
    again = fit(cfg)
    assert again == first and "last_top1" in again
    assert len((tmp_path / "rgb" / "metrics.jsonl").read_text().splitlines()) == SETTINGS["epochs"]


def test_student_without_teacher_is_a_clear_error(tmp_path):
    r = subprocess.run(_script("train_student.py", *TINY, "--out", str(tmp_path / "s")), capture_output=True, text=True)
    assert r.returncode == 2 and "needs --teacher" in r.stderr and "Traceback" not in r.stderr


def test_adamw_trains_resumes_and_refuses_another_optimizer(tmp_path):
    """--optimizer adamw: its default lr, AdamW state in the checkpoint, and resuming with SGD is
    a one-line error rather than a traceback from load_state_dict."""
    out = str(tmp_path / "rgb")
    args = [*TINY, "--alpha", "0", "--epochs", "1", "--batch-size", "8", "--out", out]
    r = subprocess.run(_script("train_student.py", *args, "--optimizer", "adamw"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    ck = load_checkpoint(tmp_path / "rgb" / "last.pt")
    assert ck["config"]["optimizer"] == "adamw" and ck["config"]["lr"] == 1e-3
    assert all("exp_avg" in st for st in ck["optimizer"]["state"].values())  # AdamW moments, not SGD momentum
    r = subprocess.run(_script("train_student.py", *args, "--epochs", "2", "--resume"), capture_output=True, text=True)
    assert r.returncode != 0 and "--optimizer 'adamw' (now 'sgd')" in r.stderr and "Traceback" not in r.stderr


def test_distillation_loss_terms():
    from fts_edge.train.distill import distillation_loss

    logits = torch.tensor([[2.0, 0.0]])
    y = torch.tensor([0])
    f_rgb, f_flow = torch.tensor([[1.0, 2.0]], requires_grad=True), torch.tensor([[0.0, 0.0]], requires_grad=True)
    loss, ce, mse = distillation_loss(logits, y, f_rgb, f_flow, alpha=10.0)
    assert torch.isclose(mse, torch.tensor(2.5)) and torch.isclose(loss, ce + 25.0)
    loss.backward()
    assert f_flow.grad is None or not f_flow.grad.any()  # the teacher's features are a detached target


def test_mimic_fit_tells_a_collapsed_student_from_one_that_learned_the_teacher():
    from fts_edge.train.distill import mimic_fit

    g = torch.Generator().manual_seed(0)
    ft = torch.rand(64, 16, generator=g) + 0.5  # ReLU-like features: a large mean, some variation
    learned = mimic_fit(ft + 0.1 * torch.randn(64, 16, generator=g), ft)
    collapsed = mimic_fit(ft.mean(0, keepdim=True).expand(64, 16), ft)
    assert learned["r2"] > 0.85 and 0.9 < learned["var_ratio"] < 1.3
    assert abs(collapsed["r2"]) < 1e-6 and collapsed["var_ratio"] < 1e-6
    assert learned["corr"] > 0.9 and mimic_fit(3 * ft + 1, ft)["corr"] > 0.999 > mimic_fit(-ft, ft)["corr"] + 1.9
    # the collapsed student's mse is small against the features' energy, which is why mse alone hides it
    assert collapsed["mse"] < 0.2 * float((ft ** 2).mean())
    with pytest.raises(ValueError, match="N x D"):
        mimic_fit(ft, ft[:, :8])


def test_correlation_mimic_gives_no_reward_for_collapsing_onto_the_teachers_mean():
    from fts_edge.train.distill import distillation_loss, mimic_term

    g = torch.Generator().manual_seed(1)
    ft = torch.rand(32, 8, generator=g) + 0.5
    noise = torch.rand(32, 8, generator=g) + 0.5  # a student that has not learned the teacher yet
    shrunk = noise.mean(0) + 0.05 * (noise - noise.mean(0))  # the same, squeezed toward one feature vector
    # MSE rewards squeezing an unrelated student onto a constant: the path into collapse
    assert mimic_term(shrunk, ft, "mse") < 0.6 * mimic_term(noise, ft, "mse")
    # the correlation mimic does not: it is the same for any positive scale of the student
    assert torch.isclose(mimic_term(shrunk, ft, "correlation"), mimic_term(noise, ft, "correlation"), atol=1e-2)
    # and it is 0 for a student that follows the teacher up to scale and offset, 4 for one that opposes it
    assert mimic_term(3 * ft + 1, ft, "correlation") < 1e-6 < mimic_term(3 * ft + 1, ft, "mse")
    assert torch.isclose(mimic_term(-ft, ft, "correlation"), torch.tensor(4.0), atol=1e-3)
    f = noise.clone().requires_grad_(True)
    loss, ce, mse = distillation_loss(torch.zeros(32, 3), torch.zeros(32, dtype=torch.long), f, ft, 10.0,
                                      mimic="correlation")
    assert torch.isclose(mse, mimic_term(noise, ft, "mse"))  # the log keeps the plain MSE for comparison
    assert torch.isclose(loss, ce + 10 * mimic_term(noise, ft, "correlation"))
    loss.backward()
    assert f.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown mimic"):
        mimic_term(noise, ft, "cosine")


def test_student_trains_with_the_correlation_mimic(tmp_path):
    r = subprocess.run(
        _script("train_teacher.py", *TINY, "--epochs", "1", "--batch-size", "8", "--out", str(tmp_path / "t")),
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    out = tmp_path / "corr"
    args = [*TINY, "--teacher", str(tmp_path / "t" / "last.pt"), "--epochs", "1", "--batch-size", "8", "--out",
            str(out)]
    r = subprocess.run(_script("train_student.py", *args, "--mimic", "correlation"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    ck = load_checkpoint(out / "last.pt")
    assert ck["config"]["mimic"] == "correlation" and ck["config"]["role"] == "student"
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["train_mse"] > 0
    r = subprocess.run(_script("train_student.py", *args, "--mimic", "cos"), capture_output=True, text=True)
    assert r.returncode == 2 and "--mimic" in r.stderr and "Traceback" not in r.stderr
    # the intermediate mimic: trains, and is saved with the student's settings
    hint_args = [*args[:-1], str(tmp_path / "hint"), "--mimic", "correlation", "--hint", "layer2,layer3"]
    r = subprocess.run(_script("train_student.py", *hint_args), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert load_checkpoint(tmp_path / "hint" / "last.pt")["config"]["hint"] == "layer2,layer3"
    init_args = [*args[:-1], str(tmp_path / "init"), "--mimic", "correlation", "--init-from-teacher"]
    r = subprocess.run(_script("train_student.py", *init_args), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert load_checkpoint(tmp_path / "init" / "last.pt")["config"]["init_from_teacher"] is True
    bad = [{"layer2,layer3": "layer9"}.get(a, a) for a in hint_args]
    r = subprocess.run(_script("train_student.py", *bad), capture_output=True, text=True)
    assert r.returncode == 2 and "--hint" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    # a student of another width has no feature map to match the teacher's, and is told so
    wide = [{"0.125": "0.25", str(tmp_path / "hint"): str(tmp_path / "wide")}.get(a, a) for a in hint_args]
    r = subprocess.run(_script("train_student.py", *wide), capture_output=True, text=True)
    assert r.returncode == 1 and "--hint needs the student built as its teacher is" in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr


def test_hint_term_follows_the_teachers_feature_map_position_by_position():
    from fts_edge.train.distill import distillation_loss, hint_term, mimic_term

    g = torch.Generator().manual_seed(2)
    t_map = torch.rand(4, 6, 2, 5, 5, generator=g)  # the teacher's block output (N, C, T, H, W)
    # a student map that follows the teacher per channel up to scale and offset: no loss
    assert hint_term(3 * t_map + 1, t_map, "correlation") < 1e-6
    # one that follows it only on average over the clip does not get that for free
    pooled_only = t_map.mean((2, 3, 4), keepdim=True).expand_as(t_map)
    assert hint_term(pooled_only, t_map, "correlation") > 0.5
    # T RGB frames against T-1 flow frames: the student's longer map is pooled to the teacher's
    s_map = torch.rand(4, 6, 3, 5, 5, generator=g, requires_grad=True)
    assert torch.isfinite(hint_term(s_map, t_map, "correlation"))
    with pytest.raises(ValueError, match="same N and C"):
        hint_term(torch.rand(4, 8, 2, 5, 5), t_map, "correlation")
    # the loss adds it to the pooled mimic at the same weight
    f, ft = torch.rand(4, 6, generator=g, requires_grad=True), torch.rand(4, 6, generator=g)
    logits, y = torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)
    loss, ce, _ = distillation_loss(logits, y, f, ft, 10.0, mimic="correlation", maps=[(s_map, t_map)])
    assert torch.isclose(loss, ce + 10 * (mimic_term(f, ft, "correlation") + hint_term(s_map, t_map, "correlation")))
    loss.backward()
    assert s_map.grad.abs().sum() > 0 and f.grad.abs().sum() > 0
    # several blocks: a term each, at the same weight
    s2, t2 = torch.rand(4, 3, 4, 9, 9, generator=g), torch.rand(4, 3, 4, 9, 9, generator=g)
    two, ce, _ = distillation_loss(logits, y, f, ft, 10.0, mimic="correlation", maps=[(s_map, t_map), (s2, t2)])
    assert torch.isclose(two, loss + 10 * hint_term(s2, t2, "correlation"))


def test_init_from_teacher_copies_every_block_but_the_flow_stem():
    from fts_edge.nets.models import FlowTeacher, create_model
    from fts_edge.train.loop import init_from_teacher

    torch.manual_seed(0)
    teacher = FlowTeacher(create_model("r3d_18", 4, in_channels=2, width=0.125), (0.5,) * 3, (0.25,) * 3)
    student = create_model("r3d_18", 4, in_channels=3, width=0.125)
    stem_before = {k: v.clone() for k, v in student.state_dict().items() if k.startswith("stem.")}
    copied = init_from_teacher(student, teacher)
    t, s = teacher.backbone.state_dict(), student.state_dict()
    assert "fc.weight" in copied and any(k.startswith("layer1.") for k in copied)
    assert all(torch.equal(s[k], t[k]) for k in t if not k.startswith("stem."))
    # the stem reads colours, not flow: kept as it was
    assert not any(k.startswith("stem.") for k in copied)
    assert all(torch.equal(s[k], v) for k, v in stem_before.items())
    # the student's map after layer1 then comes from the same blocks as the teacher's
    x = torch.rand(2, 8, 4, 3, 3)  # a stem output (N, C, T, H, W) at width 0.125
    student.eval(), teacher.eval()
    assert torch.equal(student.layer1(x), teacher.backbone.layer1(x))


def test_hint_names_blocks_of_the_network_in_order():
    from fts_edge.nets.models import create_model, hint_layers

    assert hint_layers(None) == () and hint_layers("layer3") == ("layer3",)
    assert hint_layers("layer3, layer2") == ("layer2", "layer3")
    for bad in ("layer5", "layer2,layer2", "layer2,"):
        with pytest.raises(ValueError, match="comma-separated and each once"):
            hint_layers(bad)
    net = create_model("r3d_18", num_classes=3, width=0.125).eval()
    x = torch.rand(2, 3, 4, 32, 32)
    f, maps = net.forward_features_and_maps(x, hint_layers("layer2,layer3"))
    assert maps[1].shape[1] == 2 * maps[0].shape[1] and maps[1].shape[2:] != maps[0].shape[2:]
    assert torch.equal(f, net.forward_features(x))


@pytest.mark.research
def test_seed_table_mean_and_spread(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("seed_table", ROOT / "research" / "seed_table.py")
    st = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(st)
    methods = ("RGB", "flow (teacher)", "two-stream", "distilled student")
    for i, tops in enumerate([(40, 90, 91, 60), (50, 94, 95, 64), (45, 92, 93, 71)]):
        d = tmp_path / f"s{i}" / "table"
        d.mkdir(parents=True)
        (d / "table.json").write_text(json.dumps({"rows": [{"method": m, "top1": t, "n": 100} for m, t in zip(methods,
                                                                                                              tops)]}))
    assert st.main([str(tmp_path / f"s{i}") for i in range(3)] + ["--json", str(tmp_path / "s.json")]) == 0
    s = json.loads((tmp_path / "s.json").read_text())["summary"]
    assert s["RGB"]["mean"] == 45 and s["RGB"]["sd"] == 5  # sample standard deviation
    assert s["student - RGB"]["values"] == [20, 14, 26] and s["student - RGB"]["mean"] == 20
    assert s["student - two-stream"]["mean"] == -28
    out = capsys.readouterr().out
    assert "| student - RGB | +20.0 | +14.0 | +26.0 | +20.0 | 6.0 |" in out
    assert "student at least 10 points above RGB: run 1, run 2, run 3 (3 of 3)" in out
    assert "student no more than 2 points below two-stream: none (0 of 3)" in out
    assert "over the" not in out  # tables without paired intervals: no pooled gap
    for i, (gap, lo, hi) in enumerate([(-3.5, -7.5, 0.5), (-3.2, -7.2, 0.8), (-4.8, -8.8, -0.8)]):
        f = tmp_path / f"s{i}" / "table" / "table.json"
        t = json.loads(f.read_text())
        t["diagnostics"] = {"student_minus": {"two-stream": {"points": gap, "ci95": [lo, hi], "n": 400}}}
        f.write_text(json.dumps(t))
    assert st.main([str(tmp_path / f"s{i}") for i in range(3)]) == 0
    # three intervals of +-4 (se 2.04 each): their mean's is +-4 / sqrt(3) = +-2.31
    assert "student - two-stream over the 1200 clips of the runs: -3.8 (95% interval -6.1 to -1.5" in \
        capsys.readouterr().out
    assert st.main([str(tmp_path / f"s{i}") for i in range(3)] + ["--lead", "15", "--gap", "30"]) == 0
    out = capsys.readouterr().out
    assert "above RGB: run 1, run 3 (2 of 3)" in out and "two-stream: run 3 (1 of 3)" in out  # gaps -31, -31, -22
    # demo folders: named by their seed, and runs with other settings are not averaged silently
    for i, epochs in enumerate((14, 14, 30)):
        (tmp_path / f"s{i}" / "state.json").write_text(json.dumps({"config": {"seed": i, "epochs": epochs}}))
    assert st.main([str(tmp_path / "s0"), str(tmp_path / "s1")]) == 0
    assert "| top-1 | seed 0 | seed 1 | mean | sd |" in capsys.readouterr().out
    assert st.main([str(tmp_path / f"s{i}") for i in range(3)]) == 2
    assert "differ in more than the seed (epochs: 14, 14, 30)" in capsys.readouterr().err
    assert st.main([str(tmp_path / f"s{i}") for i in range(3)] + ["--mixed"]) == 0
    capsys.readouterr()
    (tmp_path / "s2" / "table" / "table.json").write_text(json.dumps({"rows": [{"method": "RGB", "top1": 1}]}))
    assert st.main([str(tmp_path / "s0"), str(tmp_path / "s2")]) == 2
    assert "missing" in capsys.readouterr().err


def test_table_diagnostics_count_shared_errors_clip_by_clip():
    import torch

    from fts_edge.train.evaluate import diagnostics, diagnostics_text

    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    def scores(pred):
        return {"probs": torch.nn.functional.one_hot(torch.tensor(pred), 4).float(), "labels": y}
    teacher = [0, 1, 2, 3, 0, 1, 2, 3, 1, 0]  # wrong on the last two clips
    rgb = [0, 1, 2, 3, 1, 0, 2, 3, 0, 0]      # wrong on clips 4, 5 and 9; right on clip 8
    student = [0, 1, 2, 3, 0, 1, 2, 3, 1, 1]  # wrong on clip 8 only, as the teacher is
    d = diagnostics({"RGB": scores(rgb), "flow (teacher)": scores(teacher), "distilled student": scores(student)})
    assert d["agreement"] == {"RGB / flow (teacher)": 70.0, "RGB / distilled student": 60.0,
                              "flow (teacher) / distilled student": 90.0}
    assert d["teacher_wrong"] == 20.0
    assert d["also_wrong_where_teacher_is"] == {"RGB": 50.0, "distilled student": 50.0}
    assert d["rgb_or_teacher_right"] == 90.0  # clip 9 is wrong for both
    assert "the teacher is wrong on 20.0% of clips" in diagnostics_text({"diagnostics": d})
    # the student against each row, clip by clip: +1 on clip 9 over the teacher; over RGB +1 on 4, 5, 9, -1 on 8
    assert d["student_minus"]["flow (teacher)"]["points"] == 10.0
    assert d["student_minus"]["RGB"]["points"] == 20.0
    lo, hi = d["student_minus"]["RGB"]["ci95"]
    assert lo < 0 < 20 < hi  # ten clips: +20 points is within the noise
    assert "distilled student - RGB: +20.0 points (95% interval" in diagnostics_text({"diagnostics": d})


def test_top1_intervals_match_textbook_values():
    """The Wilson score interval of 80 right in 100 is 71.1-86.7; of 0 in 10, 0-27.8. A paired
    difference's interval is mean +- 1.96 sd / sqrt(n) of the clip-by-clip differences: four times
    the clips, half as wide."""
    import torch

    from fts_edge.train.evaluate import paired_difference, wilson_interval

    assert wilson_interval(80, 100) == [71.1, 86.7]
    assert wilson_interval(0, 10) == [0.0, 27.8] and wilson_interval(10, 10) == [72.2, 100.0]
    a = torch.tensor([True] * 8 + [False] * 2)
    b = torch.tensor([True] * 6 + [False] * 4)
    d = paired_difference(a, b)  # differences: eight 0s and two +1s; sd 0.4216, se 0.1333
    assert d["points"] == 20.0 and d["ci95"] == [-6.1, 46.1] and d["n"] == 10
    d40 = paired_difference(a.repeat(4), b.repeat(4))
    assert d40["points"] == 20.0 and d40["ci95"][0] > 6 and d40["ci95"][1] < 34  # four times the clips: half as wide


def _motion_folder(path, per_class=4, classes=3, frames=10, size=32):
    from fts_edge.data.synthetic import write_motion_dataset

    write_motion_dataset(path, per_class, 0, classes, frames, size, size + 8, val_fraction=0.25)
    return path


def test_the_batches_are_the_same_with_0_and_2_workers(tmp_path):
    """A clip is a function of (seed, epoch, index): the DataLoader's worker processes, which hold
    copies of the dataset, give the very batches the main process gives, epoch after epoch."""
    from fts_edge.data.clipspec import ClipSpec
    from fts_edge.data.datasets import folder_index
    from fts_edge.flow.store import build_store, open_store
    from fts_edge.train.data import ClipSet, collate
    from fts_edge.train.loop import EpochBatches

    spec = ClipSpec(frames=4, size=24, resize=28, stride=2)
    idx = folder_index(_motion_folder(tmp_path / "v"))
    store = open_store(tmp_path / "s", "fast", spec.resize, spec.stride)
    build_store(store, idx.train, spec, "fast")
    got = {}
    for workers in (0, 2):
        ds = ClipSet(idx.train, spec, True, True, store=store, seed=3, workers=workers)
        batches = EpochBatches(len(ds), 4, 1, 0, 3)
        loader = torch.utils.data.DataLoader(ds, batch_sampler=batches, num_workers=workers, collate_fn=collate,
                                             persistent_workers=workers > 0)
        got[workers] = []
        for epoch in range(2):
            batches.set_epoch(epoch)
            got[workers] += [(b["index"], b["rgb"], b["flow"]) for b in loader]
    assert len(got[0]) == 2 * (len(idx.train) // 4) > 0
    for (i0, r0, f0), (i2, r2, f2) in zip(got[0], got[2]):
        assert torch.equal(i0, i2) and torch.equal(r0, r2) and torch.equal(f0, f2)
    assert not torch.equal(got[0][0][1], got[0][len(got[0]) // 2][1])  # and the epochs differ


def test_a_run_with_workers_killed_and_resumed_ends_as_one_without(tmp_path):
    """Resume stays exact with DataLoader workers: a run with 2 workers stopped in its second epoch
    and resumed ends with the weights of an uninterrupted run with none."""
    from fts_edge.train.config import TrainConfig
    from fts_edge.train.loop import fit

    data = _motion_folder(tmp_path / "v", per_class=8)
    base = dict(role="student", teacher=None, alpha=0.0, dataset="folder", root=str(data), frames=4, size=24,
                resize=28, width=0.125, epochs=2, batch_size=4, warmup_epochs=0, optimizer="adamw", lr=1e-3, threads=1)
    fit(TrainConfig.from_settings({**base, "role": "rgb", "out": str(tmp_path / "one"), "workers": 0}))
    cfg = TrainConfig.from_settings({**base, "role": "rgb", "out": str(tmp_path / "two"), "workers": 2})
    assert fit(cfg, stop_after_steps=7)["epoch"] == 1  # stopped in the second epoch, as a kill would
    fit(cfg, resume=True)
    _same_weights(tmp_path / "one" / "last.pt", tmp_path / "two" / "last.pt")


def test_nothing_of_a_large_video_is_kept_and_small_ones_within_the_budget(tmp_path):
    """Memory that does not grow with the dataset: whole videos are kept only when they are small
    (a 64th of the budget each) and only up to the budget; a large video's clips are decoded from
    the file each time, and its flow read from the store without staying in memory."""
    import numpy as np

    from fts_edge.data.clipspec import ClipSpec
    from fts_edge.data.datasets import VideoItem
    from fts_edge.data.synthetic import render_clip
    from fts_edge.data.video import write_video
    from fts_edge.train.data import ClipSet, FrameCache

    cache = FrameCache(64 << 20)
    small, big = np.zeros((10, 32, 32, 3), np.uint8), np.zeros((200, 240, 320, 3), np.uint8)
    cache.put("small", small)
    cache.put("big", big)
    assert cache.get("small") is small and cache.get("big") is None and cache.used == small.nbytes
    for i in range(2000):  # far more small videos than the budget holds
        cache.put(f"v{i}", np.zeros((10, 96, 96, 3), np.uint8))
    assert cache.used <= cache.budget and len(cache.videos) < 2000
    spec = ClipSpec(frames=4, size=24, resize=240)
    write_video(tmp_path / "big.avi", render_clip(0, 0, 0, frames=30, height=240, width=320))
    ds = ClipSet([VideoItem(str(tmp_path / "big.avi"), 0)], spec, True, True, frame_cache_mb=8)
    for epoch in range(3):
        assert ds[(epoch, 0)]["rgb"].shape == (3, 4, 24, 24)
    assert ds.cache.used == 0  # 30 x 240 x 320 x 3 is more than a 64th of 8 MB: never held


def test_robust_flow_options_reach_the_checkpoint_the_store_and_the_student(tmp_path):
    """A teacher trained with --flow-camera/--flow-illumination records them; its checkpoint
    rebuilds a solver with them (teacher mode on the camera computes the same flow); its flow store
    is keyed by them; a student distilled from it reads that store, whatever its own flags say; and
    RGB augmentation for shake and flicker trains."""
    from conftest import TINY as TINY_SETTINGS

    from fts_edge.nets.checkpoint import build_from_checkpoint, load_checkpoint
    from fts_edge.train.config import TrainConfig
    from fts_edge.train.loop import fit, flow_settings, flow_store

    base = dict(TINY_SETTINGS, epochs=1, flow_cache=str(tmp_path / "flow"))
    t = TrainConfig.from_settings(dict(base, role="teacher", out=str(tmp_path / "t"), flow_camera="affine",
                                       flow_illumination="normalize"))
    fit(t)
    ck = load_checkpoint(tmp_path / "t" / "last.pt")
    assert (ck["flow"]["camera"], ck["flow"]["illumination"]) == ("affine", "normalize")
    net = build_from_checkpoint(ck)
    assert (net.tvl1.camera, net.tvl1.illumination) == ("affine", "normalize")
    s = TrainConfig.from_settings(dict(base, role="student", out=str(tmp_path / "s"),
                                       teacher=str(tmp_path / "t" / "best.pt"), augment_light=0.15, augment_shake=1.5))
    assert flow_settings(s) == ("fast", "affine", "normalize") and flow_store(s).tag == flow_store(t).tag
    plain = TrainConfig.from_settings(dict(base, role="teacher", out=str(tmp_path / "p")))
    assert flow_store(plain).tag != flow_store(t).tag
    assert fit(s)["epochs"] == 1


def test_rgb_augmentation_moves_and_relights_frames_reproducibly():
    import numpy as np

    from fts_edge.data.synthetic import render_clip
    from fts_edge.train.data import augment_frames

    frames = render_clip(0, 0, 0, 12, 64, 64)
    a = augment_frames(frames, np.random.default_rng(3), light=0.15, shake=1.5)
    b = augment_frames(frames, np.random.default_rng(3), light=0.15, shake=1.5)
    assert a.shape == frames.shape and a.dtype == np.uint8 and np.array_equal(a, b)
    ratio = a.reshape(12, -1).mean(1) / frames.reshape(12, -1).mean(1)
    assert ratio.max() - ratio.min() > 0.05 and 0.8 < ratio.min() and ratio.max() < 1.2
    assert np.array_equal(augment_frames(frames, np.random.default_rng(3)), frames)  # nothing asked, nothing done
