"""report.md of a run (`fts-edge demo`, `fts-edge train`): what was trained, on what, how well, and
whether the deployable model still says the same thing.

One builder for both commands, from the run's state.json (every finished stage's record), so the
report never states a number the run did not measure. Sections: the settings and seed, the machine
and package versions, the data with its chance level, the table, the deployable model's parity
with PyTorch and the INT8 model's agreement with fp32, the camera run, speed where measured, and
the pictures (curves, confusion matrices, the teacher's flow).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

from ..core.artifacts import atomic_write_text


def _environment_lines() -> List[str]:
    from ..device.environment import environment

    env = environment()
    v = env["versions"]
    lines = [f"- machine: {env.get('cpu', env['machine'])}, {env.get('cpus')} CPUs"
             + (f", GPU {env['gpu']}" if env.get("gpu") else "") + f"; {env['platform']}"]
    if env.get("jetson"):
        j = env["jetson"]
        lines.append(f"- Jetson: {j.get('model')}, L4T {j.get('l4t')}, power mode {j.get('nvpmodel', 'unknown')}")
    lines.append("- versions: " + ", ".join(f"{k} {v[k]}" for k in sorted(v)))
    return lines


def _deploy_lines(d: Dict) -> List[str]:
    p = d["parity"]
    lines = [f"- ONNX `{Path(d['onnx']).name}` vs PyTorch on {p['clips']} validation clips: top-1 agreement "
             f"{p['top1_agreement']:.0%}, largest relative logit difference {p['max_rel_diff']:.1e}"]
    for flavor, q in sorted(d.get("int8", {}).items()):
        c = q["check"]
        acc = (f"; top-1 {c['fp32_top1']:.1f} % (fp32) vs {c['int8_top1']:.1f} % (INT8)"
               if "int8_top1" in c else "")
        lines.append(f"- INT8 for {'TensorRT (Q/DQ)' if flavor == 'tensorrt' else 'ONNX Runtime on a CPU'} "
                     f"`{Path(q['onnx']).name}` vs fp32 on {c['clips']} validation clips: top-1 agreement "
                     f"{c['top1_agreement']:.1%}{acc}")
    if isinstance(d.get("engine"), str):
        lines.append(f"- TensorRT engine: not built here ({d['engine']})")
    return lines


def _camera_lines(c: Dict) -> List[str]:
    lat = c["latency_ms"]
    lines = [f"- model `{Path(c['model']).name}` on {c.get('source', 'the rendered camera stream')}: "
             f"{c['classifications']} classifications, frame-to-label latency p50 {lat['p50']:.1f} ms, "
             f"p99 {lat['p99']:.1f} ms (JSON lines: `{Path(c['jsonl']).name}`)"]
    if c.get("teacher_agreement") is not None:
        lines.append(f"- the flow teacher, run beside it on the same windows, agreed on "
                     f"{c['teacher_agreement']:.0%} of them")
    if c.get("accuracy") is not None:
        lines.append(f"- its label matched the video's class on {c['accuracy']:.0%} of the windows")
    return lines


def write_report(out: Path, title: str, intro: str, state: Dict, settings: Dict, settings_note: str,
                 chance: Optional[float] = None) -> Path:
    """Write OUT/report.md from a run's state (its finished stages) and settings.

    Args:
        out: the run folder.
        title, intro: the report's heading and first paragraph.
        state: the run's state.json (its finished stages).
        settings: the run's settings, printed whole.
        settings_note: how to reproduce the run.
        chance: the chance level, percent.

    Returns:
        The report's path.
    """
    st = state["stages"]
    lines = [f"# {title}", "", intro, "", "## Settings", "", settings_note, "",
             f"Seed {settings.get('seed', 0)}.", "", "```json", json.dumps(settings, indent=2), "```", "",
             "## Machine", ""] + _environment_lines()
    data = st.get("data", {})
    lines += [
        "",
        "## Data",
        "",
        f"{data.get('train', '?')} training and {data.get('val', data.get('test', '?'))} "
        "validation videos"
        + (f"; {len(data['unreadable'])} unreadable, left out" if data.get("unreadable") else "")
        + (f". Chance level: {chance:.1f} % top-1 (one class in {round(100 / chance)})." if chance else "."),
    ]
    lines += ["", "## Table (validation split)", "", st["table"]["markdown"], ""]
    if st.get("streaming"):
        s = st["streaming"]
        start = (
            f"the clip student's teacher, started from the teacher's blocks copied into causal layers (that "
            f"copy: top-1 {s['causal_flow_top1']:.1f} % on flow) and the clip student's stem"
            if "causal_flow_top1" in s
            else f"a flow teacher of the same causal layers (top-1 {s['teacher_top1']:.1f} %)"
        )
        lines += ["## Streaming student", "", "`causal_r3d_18` distilled with the student's loss"
                  + (f" for {s['epochs']} epochs" if s.get("epochs") else "") + f" from {start}: top-1 {s['top1']:.1f} "
                                                                                "% on "
                  f"the same {s['n']} validation clips (clip student "
                  f"{s['clip_student_top1']:.1f} %" + (f", RGB {s['rgb_top1']:.1f} %" if s.get("rgb_top1") is not None
                                                        else "") + f"). Its stage graphs (`{Path(s['onnx']).name}` and "
                                                                   "three beside it) "
                  f"stepped through the clips frame by frame match its clip forward to "
                  f"{s['parity']['max_rel_diff']:.1e}.", ""]
    if "export" in st:
        lines += ["## The deployable model", ""] + _deploy_lines(st["export"]) + [""]
    if "camera" in st:
        lines += ["## Camera", ""] + _camera_lines(st["camera"]) + [""]
    if "speed" in st:
        sp = st["speed"]
        lines += ["## Speed (one clip, this machine)", "", "| pipeline | ms |", "| --- | ---: |"]
        lines += [f"| {k} | {v:.1f} |" for k, v in sp["timings_ms"].items()]
        lines += ["", f"Best student speed-up over the OpenCV two-stream pipeline: {sp['best_student_speedup']:.1f}x",
                  ""]
    lines += ["## Confusion matrices", ""] + [f"![{f.stem}](table/{f.name})"
                                              for f in sorted((out / "table").glob("confusion_*.png"))]
    lines += ["", "## Training curves", ""]
    for role in ("teacher", "student", "rgb"):
        if (out / role / "curves.png").exists():
            lines.append(f"**{role}**\n\n![{role}]({role}/curves.png)\n")
    if (out / "flow_strip.png").exists():
        lines += ["## What the teacher sees (frames of the camera stream and their TV-L1 flow; the wheel is the "
                  "colour key)", "",
                  "![flow](flow_strip.png)", ""]
    return atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
