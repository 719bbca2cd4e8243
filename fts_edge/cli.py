"""The ``fts-edge`` command: thin. It parses arguments, calls the library, and turns the library's
typed errors into one line and an exit status. Heavy modules are imported inside each handler so
``fts-edge --help`` is instant and works without TensorRT, pycuda or a GPU.

Exit status: 0 done; 1 an error the message explains; 2 bad usage or an internal error;
3 the engine step needs TensorRT on the target device (everything before it was done); 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .core.artifacts import check_output_folder
from .core.errors import UsageError, guarded
from .core.parser import Parser
from .core.settings import check_range
from .core.version import __version__
from .data.clipspec import FLOW_CAMERA, FLOW_ILLUMINATION, RGB_ILLUMINATION, TVL1_PRESETS

# the help of --rgb-illumination, on `fts-edge train` and `fts-edge demo`
RGB_ILLUMINATION_HELP = ("normalize: each RGB frame brought to one mean brightness before the networks, in training "
                         "and wherever the model runs")


# -- data -----------------------------------------------------------------------------------
def _add_dataset_args(p, root_required=False):
    p.add_argument("--dataset", choices=("hmdb51", "ucf101", "folder", "synthetic"), default="synthetic",
                   help="dataset layout (default: synthetic, the embedded motion dataset)")
    p.add_argument("--root", required=root_required,
                   help="video root (hmdb51/ucf101: class folders; folder: [train|val]/<class>/; "
                        "synthetic: a folder written by `fts-edge data synth`, or omit to render on the fly)")
    p.add_argument("--splits", help="folder of official split files (default: --root)")
    p.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="official split (default 1)")


def cmd_data_check(a):
    from .core.progress import progress
    from .data.datasets import check_dataset, dataset_index

    idx = dataset_index(a.dataset, a.root, a.splits, a.split)
    rep = check_dataset(idx, progress=progress)
    rep.update(dataset=a.dataset, root=a.root, split=a.split)
    rep["anomalies"] = list(idx.anomalies) + [f"class {c!r}: no readable {s} video" for c, n in rep["per_class"].items()
                                              for s in ("train", "test") if n[s] == 0 and not any(
                                                  f"class {c!r}:" in x for x in idx.anomalies)]
    if a.json:
        print(json.dumps(rep))
    else:
        print(f"{a.dataset} at {a.root or '(rendered on the fly)'}, split {a.split}: {rep['classes']} classes, "
              f"{rep['train']} train and {rep['test']} test videos readable"
              + (f", frames per video {rep['frames']['min']}..{rep['frames']['max']}" if rep["frames"]["min"] else ""))
        for u in rep["unreadable"]:
            print(f"  unreadable: {u['path']}: {u['reason']}")
        for w in rep["anomalies"]:
            print(f"  warning: {w}")
        for d in rep.get("declared_more_than_decode", []):
            print(f"  warning: {d['path']}: its container declares {d['declared']} frames, {d['frames']} decode "
                  "(used with the frames that decode)")
        if not rep["unreadable"]:
            print("  every video decodes")
    return 0


def cmd_data_flow(a):
    from .core.progress import progress
    from .train.config import TrainConfig
    from .train.loop import precompute_flow

    settings = {k: getattr(a, k) for k in ("dataset", "root", "splits", "split", "per_class", "num_classes", "frames",
                                           "size", "resize", "stride", "flow_preset", "flow_camera",
                                           "flow_illumination", "device", "seed")}
    out = str(Path(a.store) / "run")  # a run folder the settings want; nothing is written there
    cfg = TrainConfig.from_settings({**settings, "role": "teacher", "out": out, "flow_cache": a.store})
    rep = precompute_flow(cfg, progress)
    if rep["rank"] == 0:
        print(f"flow of {rep['videos']} videos in {rep['store']} ({rep['bytes'] / 2**20:.0f} MB, {rep['seconds']:.0f} s"
              + (f", {len(rep['unreadable'])} unreadable" if rep["unreadable"] else "") + ")")
        for path, why in sorted(rep["unreadable"].items())[:10]:
            print(f"  unreadable: {path}: {why}")
    return 0


def cmd_data_crops(a):
    from .core.progress import progress
    from .data.clipspec import ClipSpec
    from .train.crops import make_crops

    check_output_folder(a.out, "data crops")
    spec = ClipSpec(frames=a.frames, size=a.size, resize=a.resize, stride=a.stride)
    rep = make_crops(a.root, a.out, spec, a.dataset, a.splits, a.split, 0, a.detector, progress)
    print(f"wrote {rep['train']} training and {rep['val']} validation tubes of {spec.span} frames "
          f"({spec.resize}x{spec.resize}) to {a.out}, from {rep['from']}"
          + (f"; {len(rep['untracked'])} videos without a person left out" if rep["untracked"] else ""))
    print(f"next: python train/train_teacher.py --dataset folder --root {a.out} --crop person --frames {spec.frames} "
          f"--stride {spec.stride} --size {spec.size} --resize {spec.resize}")
    return 0


def cmd_data_synth(a):
    from .core.progress import progress
    from .data.synthetic import SynthSettings, write_motion_dataset

    s = SynthSettings.make(**vars(a))
    check_output_folder(a.out, "data synth")
    w, h = s.width or s.size, s.height or s.size
    if s.objects > 1:
        from .data.synthetic import write_scene_dataset

        if s.shake or s.flicker or s.distractors or s.width:
            raise UsageError("--objects: scenes take --size (each object's column) and --height, not --width, "
                             "--shake, --flicker or --distractors")
        scenes = max(2, s.per_class * s.classes // s.objects)
        counts = write_scene_dataset(a.out, scenes, s.objects, s.seed, s.classes, s.frames, h, s.size,
                                     s.val_fraction, progress=progress, background=s.background)
        print(f"wrote {counts['train'] + counts['val']} scenes of {s.objects} objects to {a.out}: {counts['train']} "
              f"train and {counts['val']} val videos of {s.frames} frames of {s.size * s.objects}x{h}, each with its "
              f"objects' classes and boxes beside it (.boxes.json; all listed in scenes.json)")
        return 0
    counts = write_motion_dataset(a.out, s.per_class, s.seed, s.classes, s.frames, h, w, s.val_fraction,
                                  progress=progress, background=s.background, nuisance=s.nuisance)
    hard = ", ".join(f"{k} {v}" for k, v in (("shake", s.shake), ("flicker", s.flicker),
                                             ("distractors", s.distractors)) if v)
    print(f"wrote the motion dataset to {a.out}: {counts['train']} train and {counts['val']} val videos, "
          f"{s.classes} classes, {s.frames} frames of {w}x{h}" + (f"; {hard}" if hard else ""))
    return 0


# -- flow -----------------------------------------------------------------------------------
def cmd_flow(a):
    from .flow.pictures import write_flow_pictures
    from .flow.settings import FlowPicturesSettings

    s = FlowPicturesSettings.make(**vars(a))  # checked before the TV-L1 layers load
    rep = write_flow_pictures(a.video, a.out, device=s.device, preset=s.preset, size=s.size, max_frames=s.max_frames,
                              compare_opencv=s.compare_opencv)
    print(f"wrote {rep['pairs']} flow pictures of {a.video} to {rep['out']} ({rep['seconds']:.1f} s, {rep['device']})")
    if a.compare_opencv:
        print(f"end-point difference to OpenCV DualTVL1: mean {rep['epe_vs_opencv']:.3f} px "
              f"(flow magnitude mean {rep['mean_magnitude']:.2f} px)")
    return 0


def _bench_regions(s) -> int:
    """bench regions, tracks and scenes: print the table, save the JSON."""
    from .bench import regions as br
    from .bench.settings import checked_input

    if s.target == "scenes":
        if not (Path(s.input) / "scenes.json").is_file():
            raise UsageError(f"bench scenes --input {s.input}: not a scene folder (no scenes.json; "
                             "fts-edge data synth OUT --objects 2 writes one)")
        res = br.bench_scenes(s.input, s.model, s.whole, s.threads)
        print(f"{res['objects']} objects of the validation scenes of {s.input}: per-object top-1")
        for k, v in res["top1"].items():
            print(f"  {k:40s} {v:5.1f}")
    elif s.target == "regions":
        res = br.bench_regions(s.model, checked_input(s.input), s.regions, every=s.every, threads=s.threads,
                               out=s.out)
        print(f"{res['frames']} frames of {s.input} on 2 inputs, a window every {s.every} frames")
        print("| regions per input | batched: cls/s | model ms per region | one by one: cls/s | model ms per region "
              "| batching's speed-up |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in res["rows"]:
            b, o = r["batched"], r["one_by_one"]
            print(f"| {r['regions_per_input']} | {b['classifications_per_s']} | {b['model_ms_per_region']} | "
                  f"{o['classifications_per_s']} | {o['model_ms_per_region']} | {r['batched_speedup']}x |")
    else:
        models = [s.model] + ([s.streaming_model] if s.streaming_model else [])
        res = br.bench_tracks(models, checked_input(s.input), every=s.every, detect_every=s.detect_every,
                              threads=s.threads, out=s.out)
        print(f"--track person on {s.input} ({res['fps']:g} fps), detector every {s.detect_every} frame(s)")
        print("| model | tracks | fragmentations | frames/s | cls/s | latency p50 ms | p99 ms |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in res["rows"]:
            print(f"| {r['model']}{' (streaming)' if r['streaming'] else ''} | {r['tracks']} | {r['fragmentations']} | "
                  f"{r['frames_per_s']} | {r['classifications_per_s']} | {r['latency_ms_p50']} | "
                  f"{r['latency_ms_p99']} |")
    print(f"\nsaved {br.save(res, Path(s.out) / f'bench_{s.target}.json')}")
    return 0


def cmd_bench(a):
    from .bench.settings import BenchSettings, checked_input
    from .core.progress import progress

    s = BenchSettings.from_flags(**{**vars(a), "input": a.input or a.video})
    if s.target in ("regions", "tracks", "scenes"):
        return _bench_regions(s)
    video = checked_input(s.input) if s.target != "train" else None
    if s.model:
        from .api import load_classifier
        from .bench import model as bench_model

        rep = bench_model.bench_model(s.model, video, warmup=s.warmup, runs=s.runs, batch=s.batch, device=s.device,
                                      threads=s.threads, progress=progress, load=load_classifier)
        bench_model.print_report(rep)
        print(f"\nsaved {bench_model.save(rep, s.out)}")
        return 0
    if s.target == "flow":
        from .bench import flow as bench_flow

        res = bench_flow.run(video, sizes=s.sizes, repeats=s.runs, devices=list(s.devices) if s.devices else None)
        res["scenes"] = bench_flow.robust_scenes()
        bench_flow.print_table(res)
        bench_flow.print_scenes(res["scenes"])
        print(f"\nsaved {bench_flow.save(res, Path(s.out) / 'bench_flow.json')}")
        return 0
    if s.target == "train":
        from .bench import train as bench_train

        if s.input and not Path(s.input).is_dir():
            raise UsageError(f"bench train --input {s.input}: a folder of videos (<class>/<video>), or none for the "
                             "generated HMDB51-shaped set")
        if s.epoch_rss:  # the memory measure alone: an epoch's peak RSS against the number of videos
            path = bench_train.save_rss(bench_train.epoch_rss(s.epoch_rss, s.out, frames=s.video_frames), s.out)
            print(f"\nsaved {path}")
            return 0
        res = bench_train.run(s.out, data=s.input, per_class=s.per_class, frames=s.video_frames,
                              geometries=s.geometries, workers=s.workers, steps=s.steps,
                              batch=a.batch or bench_train.BATCH, runs=s.runs, progress=progress)
        bench_train.print_report(res)
        print(f"\nsaved {Path(s.out) / 'bench_train.json'} and {Path(s.out) / 'bench_train.png'}")
        return 0
    if s.target == "stream":
        from .bench import stream as bench_stream

        res = bench_stream.run(width=s.widths[0], frames=s.frames, size=s.size, classes=s.classes, runs=s.runs,
                               warmup=s.warmup, video=video, out=s.out, two_stream=s.two_stream)
        bench_stream.print_report(res)
        print(f"\nsaved {Path(s.out) / 'bench_stream.json'}")
        return 0
    from .bench import pipeline as bench

    res = bench.run(widths=s.widths, backends=s.backends, precisions=s.precisions, frames=s.frames, size=s.size,
                    batch=s.batch, warmup=s.warmup, runs=s.runs, out=s.out, video=video, classes=s.classes,
                    two_stream=s.two_stream, progress=progress)
    bench.print_table(res)
    print(f"\nsaved {Path(s.out) / 'bench.json'} and {Path(s.out) / 'bench.png'}")
    return 0


# -- export and engines ----------------------------------------------------------------------
def cmd_export(a):
    from .export.onnx import export
    from .export.settings import ExportSettings

    s = ExportSettings.make(**vars(a))  # checked before torch loads
    rep = export(a.checkpoint, s.out, batch=s.batch, dynamic_batch=s.dynamic_batch, video=s.video)
    p = rep["parity"]
    print(f"wrote {rep['onnx']} (opset {rep['opset']}, batch {rep['batch']}, {rep['nodes']} nodes, simplified: "
          f"{rep['simplified']}) and {rep['metadata']}")
    print(f"parity with PyTorch on {p['clips']} real clips: top-1 agreement {p['top1_agreement']:.0%}, "
          f"max abs diff {p['max_abs_diff']:.2e}, max rel diff {p['max_rel_diff']:.2e}")
    if rep.get("streaming"):
        st = rep["streaming"]
        print(f"a streaming student: four stage graphs ({', '.join(Path(f).name for f in rep['stages'].values())}) "
              f"stepped one frame at a time with {len(st['state_shapes'])} state tensors (fed frame by frame above); "
              f"the logits of a {st['window']}-frame clip come {st['latency']} frames after its last frame")
    return 0


def cmd_build_engine(a):
    from .api import build_engine
    from .core.progress import progress
    from .device.build import BuildSettings

    s = BuildSettings.make(**{**vars(a), "workspace_mb": a.workspace, "keep_stem_fp": not a.int8_stem})
    build_engine(a.model, s, progress=progress)
    return 0


def cmd_deepstream(a):
    from .device.deepstream import deepstream_config

    paths = deepstream_config(a.model, a.out, sources=a.sources, max_rois=a.max_rois or 0, every=a.every,
                              uris=a.uri or ())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    print(f"on the device: cd {a.out} && deepstream-3d-action-recognition -c {paths['app'].name}")
    return 0


def cmd_predict(a):
    import csv

    from .api import load_classifier
    from .device.predict import PredictSettings, predict

    s = PredictSettings.make(**vars(a))
    rows = predict(a.inputs, a.model or _default_model(), clips=s.clips, k=s.topk, device=s.device, threads=s.threads,
                   load=load_classifier)
    if a.json:
        print(json.dumps(rows))
    elif a.csv:
        w = csv.writer(sys.stdout)
        w.writerow(["video", "label", "score", "top", "error"])
        for r in rows:
            w.writerow([r["video"], r.get("label", ""), r.get("score", ""),
                        " ".join(f"{t['label']}:{t['score']}" for t in r.get("top", [])), r.get("error", "")])
    else:
        for r in rows:
            if "error" in r:
                print(f"{r['video']}: unreadable: {r['error']}")
            else:
                rest = ", ".join(f"{t['label']} {t['score']:.2f}" for t in r["top"][1:])
                print(f"{r['video']}: {r['label']} {r['score']:.2f}" + (f"  ({rest})" if rest else ""))
    return 1 if any("error" in r for r in rows) else 0


def cmd_evaluate(a):
    from .api import load_classifier
    from .device.predict import EvaluateSettings, evaluate_artifact

    s = EvaluateSettings.make(**vars(a))
    index = None
    if s.root or s.dataset:
        from .data.datasets import dataset_index
        index = dataset_index(s.dataset or "folder", s.root, s.splits, s.split)
    rep = evaluate_artifact(a.model or _default_model(), index, limit=s.limit, device=s.device, threads=s.threads,
                            load=load_classifier)
    print(f"{rep['backend']} on {rep['n']} test clips: top-1 {rep['top1']:.1f}, top-5 {rep['top5']:.1f}, "
          f"{rep['clips_per_s']:.1f} clips/s")
    print("test clips per class: " + ", ".join(f"{c} {k}" for c, k in zip(rep["classes"], rep["per_class_n"])))
    for path, why in sorted(rep["excluded_unreadable"].items()):
        print(f"excluded (unreadable): {path}: {why}")
    if a.json_out:
        from .core.artifacts import atomic_write_text
        atomic_write_text(a.json_out, json.dumps(rep, indent=2))
    return 0


def _default_model() -> str:
    from .device.locate import default_model

    return default_model()


def cmd_verify(a):
    from .api import load_classifier
    from .device import verify

    s = verify.VerifySettings.make(**vars(a))
    rep = verify.verify(a.model, a.against, a.input, clips=s.clips, runs=s.runs, min_agreement=s.min_agreement,
                        max_rel_diff=s.max_rel_diff, device=s.device, threads=s.threads, load=load_classifier)
    if a.json:
        print(json.dumps(rep))
    else:
        verify.print_report(rep)
    if a.json_out:
        from .core.artifacts import atomic_write_text
        atomic_write_text(a.json_out, json.dumps(rep, indent=2))
    return 0 if rep["passed"] else 1


# -- camera -----------------------------------------------------------------------------------
def add_camera_args(c):
    c.add_argument("--device", default="auto", type=_device_or_input, metavar="{cpu,cuda,auto}",
                   help="where the model runs: cpu, cuda or auto (default: the best there is)")
    c.add_argument("--input", dest="inputs", action="append", metavar="URI",
                   help="source URI, repeatable: /dev/videoN, v4l2://N, csi://N, rtsp://..., FILE, file://FILE, "
                        "synthetic://")
    c.add_argument("--model", help="student artifact: .engine, .onnx or .pt (default: the best found in engines/ "
                                   "or runs/demo/)")
    from .live.stream import LIVE  # the defaults: declared there, named here

    c.add_argument("--every", type=int, metavar="N",
                   help=f"classify every N frames (default {LIVE.every}; a streaming student steps on every frame)")
    c.add_argument("--stride", dest="every_deprecated", type=int, help=argparse.SUPPRESS)
    c.add_argument("--smooth", type=int, help=f"average scores over the last K windows (default {LIVE.smooth})")
    c.add_argument("--topk", type=int, help=f"classes reported per window (default {LIVE.topk})")
    c.add_argument("--on", type=float, help=f"event starts above this smoothed score (default {LIVE.on})")
    c.add_argument("--off", type=float, help=f"event ends below this smoothed score (default {LIVE.off})")
    c.add_argument("--realtime", action="store_true", help="play files at their own frame rate, as a camera")
    c.add_argument("--headless", action="store_true", help=argparse.SUPPRESS)  # the default; kept so old units run
    c.add_argument("--json-out", help="append the JSON lines to this file instead of stdout")
    c.add_argument("--display", action="store_true", help="show an annotated window (needs a screen and OpenCV GUI)")
    c.add_argument("--output", help="write the annotated stream to this video file (.mp4, .avi, .mkv, .mov)")
    c.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    c.add_argument("--linger", type=float, metavar="SECONDS",
                   help="with --serve: keep the page up this long after the input ends, showing that it ended")
    c.add_argument("--serve", metavar="HOST:PORT", help="serve a live page (MJPEG + label); host defaults to 127.0.0.1")
    c.add_argument("--teacher", help="teacher mode: run this flow-teacher checkpoint beside the student")
    c.add_argument("--flow-dir", help="teacher mode: write the flow pictures to this folder")
    c.add_argument("--max-windows", type=int, help="stop after this many classifications")
    c.add_argument("--max-retries", type=int,
                   help="give up on a lost camera after N failed reopenings (default 0: keep trying)")
    c.add_argument("--threads", type=int, help="inference threads (default: the runtime's choice)")
    c.add_argument("--cpu", action="store_true", help=argparse.SUPPRESS)  # the same as --device cpu
    r = c.add_argument_group("regions and people (each classified on its own, all in one batch)")
    r.add_argument("--roi", dest="regions", action="append", metavar="[N:]NAME=x,y,w,h",
                   help="a region of every input (or of input N, from 0): pixels, or fractions of the frame "
                        "where every value is at most 1; repeatable")
    r.add_argument("--regions", dest="regions_file", metavar="FILE",
                   help='regions from a JSON or YAML file: {"regions": {NAME: [x, y, w, h]}, '
                        '"inputs": {"0": {NAME: [x, y, w, h]}}}')
    r.add_argument("--track", choices=("person",), help="classify each person: a detector, then ByteTrack "
                                                       "(pip install 'fts-edge[track]')")
    r.add_argument("--detector", metavar="hog|MODEL.onnx",
                   help="--track's person detector: hog (OpenCV's, built in; default) or a person detector's ONNX "
                        "(YOLOv5/v8/11 heads, or boxes after NMS)")
    r.add_argument("--detect-every", type=int, metavar="N", help="run the detector every N frames (default 1)")


def _device_or_input(value: str) -> str:
    """camera --device took a camera before it meant cpu/cuda: such a value is passed on as an input."""
    return value if value in ("cpu", "cuda", "auto") else "input:" + value


def camera_settings(a):
    """The camera's settings from its flags, built and validated once (CameraSettings); a flag left
    unset keeps the settings' own default."""
    from .live.camera import CameraSettings

    if a.device.startswith("input:"):
        print(f"warning: camera --device {a.device[6:]} is now --input {a.device[6:]} (--device is cpu or cuda)",
              file=sys.stderr)
        a.inputs = (a.inputs or []) + [a.device[6:]]
        a.device = "auto"
    if a.headless and a.display:
        raise UsageError("--headless and --display contradict each other")
    if a.every_deprecated is not None:
        check_range("--stride", a.every_deprecated, lo=1)
        print("warning: camera --stride is now --every (--stride is the clip's temporal sampling elsewhere)",
              file=sys.stderr)
        a.every = a.every_deprecated
    return CameraSettings.make(
        inputs=a.inputs or [],
        model=a.model,
        every=a.every,
        smooth=a.smooth,
        topk=a.topk,
        on=a.on,
        off=a.off,
        realtime=a.realtime,
        json_out=a.json_out,
        output=a.output,
        overwrite=a.overwrite,
        serve=a.serve,
        display=a.display,
        linger=a.linger,
        teacher=a.teacher,
        flow_dir=a.flow_dir,
        max_windows=a.max_windows,
        max_retries=a.max_retries,
        threads=a.threads,
        device="cpu" if a.cpu else (None if a.device == "auto" else a.device),
        regions=a.regions or (),
        regions_file=a.regions_file,
        track=a.track,
        detector=a.detector,
        detect_every=a.detect_every,
    )


def cmd_camera(a):
    from .api import load_classifier
    from .live.camera import run

    summary = run(camera_settings(a), load=load_classifier)
    if a.json_out:
        print(f"{summary['classifications']} classifications in {summary['seconds']:.1f} s "
              f"({summary['classifications_per_s']:.2f}/s), latency p50 {summary['latency_ms']['p50']:.0f} ms; "
              f"JSON lines in {a.json_out}")
    if summary.get("stopped") == "reader gone":  # | head -1: the reader has what it wanted
        return 0
    if summary.get("stopped"):
        print(f"stopped by {summary['stopped']}; outputs finished", file=sys.stderr)
        return 143 if summary["stopped"] == "SIGTERM" else 130
    errors = [s["error"] for s in summary["sources"] if s.get("error")]
    if errors:
        print(f"error: {errors[0]} ({summary['classifications']} classifications made before)", file=sys.stderr)
        return 1
    return 0


def demo_settings(a):
    """(DemoConfig, output folder) from the demo's flags (checked by DemoConfig's own ranges)."""
    from dataclasses import replace

    from .demo import QUICK, DemoConfig

    base = QUICK if a.quick else DemoConfig()
    given = {k: getattr(a, k) for k in ("seed", "epochs", "teacher_epochs", "flow_camera", "flow_illumination",
                                         "rgb_illumination") if getattr(a, k) is not None}
    cfg = replace(base, **given)
    longer = (cfg.epochs, cfg.teacher_epochs) != (base.epochs, base.teacher_epochs)
    name = ("runs/demo-quick" if a.quick else "runs/demo") + (f"-e{cfg.epochs}-t{cfg.teacher_epochs}" if longer else "")
    return cfg, a.out or (name + (f"-seed{cfg.seed}" if cfg.seed else ""))


def train_settings(a):
    """(TrainSettings, run folder) of `fts-edge train`: the settings of ``--config`` or of the
    preset, then every flag given on top (DATA is the data, so with ``--config`` it trains that
    run's recipe on other videos, into their own folder). Without DATA, ``--config RUN/settings.json``
    resumes RUN itself."""
    import dataclasses

    from .pipeline import PRESETS
    from .trainrun import TrainSettings

    if a.config:
        if a.preset:
            raise UsageError("--preset and --config both give the recipe: the recipe is the config file's; change "
                             "its epochs with --epochs and --teacher-epochs")
        s = TrainSettings.from_file(a.config)
    elif not a.data:
        raise UsageError("give the data folder (DATA) or --config a settings.json of an earlier run")
    else:
        s = TrainSettings(recipe=PRESETS[a.preset or "small"])
    given = {k: getattr(a, k) for k in ("dataset", "splits", "split", "seed", "flip", "pretrained", "baseline",
                                        "streaming", "detector", "kd") if getattr(a, k, None) is not None}
    if a.data:
        given["root"] = str(Path(a.data).resolve())
    if getattr(a, "unlabeled", None):
        given["unlabeled"] = str(Path(a.unlabeled).resolve())
    recipe = {k: getattr(a, k) for k in ("epochs", "teacher_epochs", "flow_camera", "flow_illumination",
                                         "augment_light", "augment_shake", "rgb_illumination", "crop")
              if getattr(a, k, None) is not None}
    s = dataclasses.replace(s, **given, recipe=dataclasses.replace(s.recipe, **recipe))
    check_range("--kd", s.kd, lo=0.0)
    if s.unlabeled and s.recipe.crop == "person":
        raise UsageError("--unlabeled with --crop person: the unlabeled videos would need their people cut out "
                         "too; cut them with fts-edge data crops and train with the scripts' --unlabeled")
    if a.out:
        out = a.out
    elif a.config and not a.data:
        out = str(Path(a.config).resolve().parent)
    else:
        out = str(Path("runs") / Path(s.root or "run").name)
    return s, out


def cmd_train(a):
    from .core.progress import progress
    from .trainrun import TrainRun

    s, out = train_settings(a)
    print(f"fts-edge train: {s.dataset} at {s.root} into {out} (Ctrl-C and run again to resume)")
    res = TrainRun(out, s, progress=progress).run()
    onnx = res["deploy"]["onnx"]
    if s.recipe.crop == "person":
        print(f"\nreport: {Path(out) / 'report.md'}\nnext (the model reads tracked people):\n"
              f"  fts-edge camera --input /dev/video0 --track person --model {onnx}\n"
              f"  on the Jetson: fts-edge build-engine {onnx} --int8")
        return 0
    print(f"\nreport: {Path(out) / 'report.md'}\nnext:\n  fts-edge predict my_clip.mp4 --model {onnx}\n"
          f"  fts-edge camera --input /dev/video0 --model {onnx}\n  on the Jetson: fts-edge build-engine {onnx} --int8")
    return 0


def cmd_demo(a):
    from .core.progress import progress
    from .demo import Demo, demo_minutes, summary_text

    cfg, out = demo_settings(a)
    when = "quick settings" if a.quick else f"about {demo_minutes(cfg):.0f} minutes on a 2-core CPU"
    print(f"fts-edge demo: the whole pipeline on the embedded motion dataset, in {out} "
          f"({when}; Ctrl-C and run again to resume)")
    res = Demo(out, cfg, progress=progress, video=a.input, streaming=a.streaming).run()
    print(summary_text(Path(out), res))
    print(f"\nfinished in {res['seconds']:.0f} s (this run); report: {Path(out) / 'report.md'}")
    return 0


def cmd_doctor(a):
    from .device.doctor import diagnose, print_report

    rep = diagnose()
    if a.json:
        print(json.dumps(rep))
    else:
        print_report(rep)
    return 1 if rep["missing_required"] else 0


def add_settings(parser, cls, only=None) -> None:
    """Flags for a settings class's fields (``--per-class`` for ``per_class``), their help and
    default read from the class: a flag left unset keeps the field's own default (Settings.make)."""
    import dataclasses

    for f in dataclasses.fields(cls):
        if (only and f.name not in only) or not f.metadata.get("help"):
            continue
        kind = type(f.default) if f.default is not None else int
        parser.add_argument("--" + f.name.replace("_", "-"), type=kind,
                            help=f"{f.metadata['help']} (default {f.default})".replace("%", "%%"))


# -- parser ---------------------------------------------------------------------------------
def _add_runtime_args(p):
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="ONNX Runtime device (default: best)")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads (default: all cores)")


def _data_parser(sub):
    data = sub.add_parser("data", help="check or write datasets", description="Check or write datasets.")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", parser_class=Parser)
    c = dsub.add_parser("check", help="decode every video once and report counts and unreadable files",
                        description="Decode every video once (with a progress bar) and report the classes, "
                                    "train/test counts and every unreadable file with its reason.")
    _add_dataset_args(c)
    c.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    c.set_defaults(func=cmd_data_check)
    f = dsub.add_parser("flow", help="compute a dataset's flow store once (what the teacher and the student read)",
                        description="Compute the TV-L1 flow of every training and validation video once, into the flow "
                                    "store the training scripts read (each video one file, named by its content and "
                                    "the settings; what is there already is kept). Under torchrun each process "
                                    "computes its share.",
                        epilog="example: torchrun --nproc_per_node 4 -m fts_edge data flow --dataset hmdb51 "
                               "--root hmdb51/videos --splits hmdb51/splits --device cuda")
    _add_dataset_args(f)
    from .train.config import DEFAULTS

    f.add_argument("--store", default="runs/flow_cache",
                   help="the store's folder (default runs/flow_cache: where train/train_teacher.py --out runs/teacher "
                        "looks)")
    f.add_argument("--frames", type=int, help=f"clip frames (default {DEFAULTS.clip.frames})")
    f.add_argument("--size", type=int, help=f"crop size (default {DEFAULTS.clip.size})")
    f.add_argument("--resize", type=int, help=f"short side the frames are scaled to (default {DEFAULTS.clip.resize})")
    f.add_argument("--stride", type=int, help=f"frames between a clip's frames (default {DEFAULTS.clip.stride})")
    f.add_argument("--per-class", type=int, help="synthetic rendered on the fly: videos per class")
    f.add_argument("--num-classes", type=int, help="synthetic rendered on the fly: classes")
    f.add_argument("--seed", type=int, help="a folder's held-out draw (default 0)")
    f.add_argument("--flow-preset", choices=TVL1_PRESETS, help=f"TV-L1 settings (default {DEFAULTS.flow_preset})")
    f.add_argument("--flow-camera", choices=FLOW_CAMERA,
                   help="the camera's motion removed from the flow (default none)")
    f.add_argument("--flow-illumination", choices=FLOW_ILLUMINATION,
                   help="changing light taken out of the frames before TV-L1 (default none)")
    f.add_argument("--device", choices=("cpu", "cuda"), help="where TV-L1 runs (default cpu)")
    f.set_defaults(func=cmd_data_flow)
    c = dsub.add_parser("crops", help="cut each video's person out as clip-long tubes (for --crop person)",
                        description="Cut the person of every video (a scene folder's objects by the boxes beside "
                                    "them) into clip-long tubes, as camera --track person cuts them, in the folder "
                                    "layout OUT/{train,val}/<class>/, for the training scripts' --crop person. "
                                    "Resumes if interrupted.")
    c.add_argument("root", help="the videos: a folder, HMDB51 or UCF101 (with --dataset), or a scene folder")
    c.add_argument("out", help="output folder")
    c.add_argument("--dataset", choices=("folder", "hmdb51", "ucf101"), default="folder",
                   help="layout (default folder)")
    c.add_argument("--splits", help="official split files (hmdb51/ucf101)")
    c.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="official split (default 1)")
    c.add_argument("--detector", default="hog", metavar="hog|MODEL.onnx", help="the person detector (default hog)")
    from .pipeline import PRESETS

    small = PRESETS["small"]
    c.add_argument("--frames", type=int, default=small.frames, help=f"frames a clip (default {small.frames})")
    c.add_argument("--stride", type=int, default=small.stride, help=f"frames between (default {small.stride})")
    c.add_argument("--size", type=int, default=small.size, help=f"crop side (default {small.size})")
    c.add_argument("--resize", type=int, default=small.resize, help=f"tube side (default {small.resize})")
    c.set_defaults(func=cmd_data_crops)
    s = dsub.add_parser("synth", help="write the procedural motion dataset as videos",
                        description="Write the motion dataset (classes carried by motion alone) as MJPG "
                                    "videos in the folder layout OUT/{train,val}/<class>/. Resumes if interrupted.")
    s.add_argument("out", help="output folder")
    from .data.synthetic import SynthSettings

    add_settings(s, SynthSettings)
    s.set_defaults(func=cmd_data_synth)
    data.set_defaults(func=lambda a: (data.print_help(), 2)[1])
    return dsub


def _flow_parser(sub) -> None:
    fl = sub.add_parser("flow", help="write a video's TV-L1 flow pictures beside its frames",
                        description="Compute TV-L1 flow (the TVL1 layers) on consecutive frames of a video and "
                                    "write it beside the frames as a video (.mp4/.avi) or PNGs in a folder.")
    fl.add_argument("video", help="input video file")
    fl.add_argument("--out", required=True, help="OUT.mp4 / OUT.avi, or a folder for PNG files")
    fl.add_argument("--compare-opencv", action="store_true",
                    help="add OpenCV DualTVL1's flow and print the end-point difference")
    fl.add_argument("--device", choices=("cpu", "cuda"), help="where TVL1 runs (default cpu)")
    fl.add_argument("--preset", choices=TVL1_PRESETS,
                    help="TVL1 settings: OpenCV's defaults, or the teacher's fast preset")
    from .flow.settings import FlowPicturesSettings

    add_settings(fl, FlowPicturesSettings, only=("size", "max_frames"))
    fl.set_defaults(func=cmd_flow)


def _camera_parser(sub) -> None:
    cam = sub.add_parser("camera", help="classify a live camera (or file, RTSP, CSI) with the student",
                         description="Keep a rolling window of the last T frames (T from the model's metadata), "
                                     "classify every --every frames, smooth, and report JSON lines, events, an "
                                     "annotated video, a live page or a window. Lost cameras are reopened.")
    add_camera_args(cam)
    cam.set_defaults(func=cmd_camera)


def _export_parser(sub) -> None:
    e = sub.add_parser("export", help="student checkpoint -> ONNX, simplified and parity-checked",
                       description="Export the RGB student to ONNX (opset 17, input `clip` N x 3 x T x H x W, "
                                   "output `logits`), simplify it (onnxsim), check it, and compare it with "
                                   "PyTorch on real clips; writes the bundle metadata beside it.")
    e.add_argument("checkpoint", help="student checkpoint (best.pt)")
    e.add_argument("--out", help="ONNX path (default engines/student.onnx, where build-engine and camera look)")
    g = e.add_mutually_exclusive_group()
    g.add_argument("--batch", type=int, help="static batch size (default 1)")
    g.add_argument("--dynamic-batch", action="store_true", help="a dynamic batch axis instead")
    e.add_argument("--video", help="real footage for the parity check, besides the validation split")
    e.set_defaults(func=cmd_export)


def _build_engine_parser(sub) -> None:
    be = sub.add_parser("build-engine", help="ONNX/checkpoint -> INT8 Q/DQ ONNX, FP16, TensorRT engine",
                        description="Everything up to the engine runs anywhere: export (from a checkpoint), INT8 "
                                    "calibration into a Q/DQ ONNX checked in ONNX Runtime, an fp16 ONNX. The "
                                    "TensorRT engine is built where TensorRT and a GPU are; elsewhere the command "
                                    "says so and exits with status 3.")
    from .device.build import BuildSettings
    from .device.quantize import METHODS

    d = BuildSettings()  # the defaults, declared there
    be.add_argument("model", nargs="?", help="ONNX or student checkpoint (default: student.onnx in engines/ or the "
                                             "newest runs/*/engines/)")
    be.add_argument("--fp16", action="store_true", help="FP16 engine (default when neither is given)")
    be.add_argument("--int8", action="store_true", help="INT8 engine from a calibrated Q/DQ ONNX")
    be.add_argument("--workspace", type=int, help=f"TensorRT workspace in MB (default {d.workspace_mb})")
    be.add_argument("--timing-cache", help="TensorRT timing cache file, reused across builds")
    be.add_argument("--calib-data", help="folder of videos to calibrate on (default: the training split)")
    be.add_argument("--calib-input", "--calib-video", "--calib-camera", dest="calib_input", metavar="URI",
                    help="calibrate (and, without the training data here, check INT8) on this video or camera "
                         "(/dev/video0, csi://0, rtsp://...)")
    be.add_argument("--calib-clips", type=int, help=f"calibration clips (default {d.calib_clips})")
    be.add_argument("--calib-method", choices=METHODS, help=f"how activation ranges are chosen (default "
                                                            f"{d.calib_method})")
    be.add_argument("--int8-stem", action="store_true",
                    help="quantize the 3-channel stem convolution too (default: keep it in float, FP16 in the "
                         "engine: TensorRT's INT8 kernels want 4 or more channels; on CPUs it was slower "
                         "quantized)")
    be.add_argument("--min-agreement", type=float,
                    help=f"fail if INT8 agrees with fp32 on fewer clips than this (default {d.min_agreement})")
    be.add_argument("--force", action="store_true", help="rebuild even if a matching engine exists")
    be.add_argument("--onnx-only", action="store_true",
                    help="make the INT8/fp16 ONNX files and stop before the TensorRT engine (exit 0 without TensorRT)")
    be.add_argument("--max-batch", type=int,
                    help=f"largest batch of a dynamic-batch ONNX's optimization profile (default {d.max_batch})")
    be.add_argument("--calib-memory-mb", type=int,
                    help=f"memory budget of calibration (default {d.calib_memory_mb}): entropy/percentile past it are "
                         "refused")
    be.set_defaults(func=cmd_build_engine)


def _predict_parser(sub) -> None:
    pr = sub.add_parser("predict", help="label video files offline with any model (.engine, .onnx, .pt)",
                        description="One label per video: clips spread over each video are classified and their "
                                    "scores averaged. Inputs are files, folders (searched recursively) or glob "
                                    "patterns. Exit status 1 if a video could not be read (its row says why).",
                        epilog="example: fts-edge predict my_videos/ clip.mp4 --model engines/student.int8.cpu.onnx "
                               "--csv")
    pr.add_argument("inputs", nargs="+", metavar="INPUT", help="video file, folder or glob pattern")
    pr.add_argument("--model", help="the model (default: the one the camera would use, from engines/ or runs/demo/)")
    from .device.predict import PredictSettings

    add_settings(pr, PredictSettings, only=("clips", "topk"))
    g = pr.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", help="one JSON list")
    g.add_argument("--csv", action="store_true", help="CSV rows: video,label,score,top,error")
    _add_runtime_args(pr)
    pr.set_defaults(func=cmd_predict)


def _evaluate_parser(sub) -> None:
    ev = sub.add_parser("evaluate", help="score any model (.engine, .onnx, INT8 ONNX, .pt) on a dataset's test split",
                        description="Top-1, top-5, test clips per class and the confusion matrix of any artifact on "
                                    "the test split its metadata names (the split it was trained with), or on "
                                    "--dataset/--root. Unreadable videos are left out and listed.",
                        epilog="example: fts-edge evaluate engines/student.int8.cpu.onnx --json-out table.json")
    ev.add_argument("model", nargs="?", help="the model (default: the one the camera would use)")
    ev.add_argument("--dataset", choices=("hmdb51", "ucf101", "folder", "synthetic"), help="another dataset")
    ev.add_argument("--root", help="its video root")
    ev.add_argument("--splits", help="its split files (default --root)")
    ev.add_argument("--split", type=int, choices=(1, 2, 3), help="official split")
    ev.add_argument("--limit", type=int, help="score only the first N test videos")
    _add_runtime_args(ev)
    ev.add_argument("--json-out", help="save the result (with the confusion matrix) as JSON here")
    ev.set_defaults(func=cmd_evaluate)


def _deepstream_parser(sub) -> None:
    ds = sub.add_parser("deepstream", help="write the DeepStream 3D action recognition configs for an engine",
                        description="Write what NVIDIA's deepstream-3d-action-recognition sample needs to run a "
                                    "student engine (or ONNX): the nvdspreprocess config (3D sequence batching with "
                                    "the model's clip geometry and normalisation), the nvinfer config and the "
                                    "labels, from the model's bundle.")
    ds.add_argument("model", help="the student's engine (.engine) or ONNX")
    ds.add_argument("--out", default="deepstream", help="folder for the files (default deepstream/)")
    ds.add_argument("--sources", type=int, default=1, help="streams, one centre region each (default 1)")
    ds.add_argument("--max-rois", type=int, help="regions batched at once (default: --sources)")
    ds.add_argument("--every", type=int, default=5, help="frames between classified windows (default 5)")
    ds.add_argument("--uri", action="append", help="a source URI for the app config (repeatable)")
    ds.set_defaults(func=cmd_deepstream)


def _verify_parser(sub) -> None:
    v = sub.add_parser("verify", help="check an engine or INT8/ONNX model against its reference on real clips",
                       description="Run the artifact (.engine, INT8 ONNX, ONNX) and its reference (the fp32 ONNX it "
                                   "was built from, or --against) on the same real clips: top-1 agreement, logit "
                                   "differences, the engine's per-layer precision summary, latency and throughput. "
                                   "Exit status 1 past the thresholds.",
                       epilog="example: fts-edge verify engines/student.int8.engine --input /dev/video0")
    v.add_argument("model", help="the artifact to check (.engine, .onnx)")
    v.add_argument("--against", help="the reference (default: the fp32 ONNX or checkpoint it was made from)")
    v.add_argument("--input", help="clips from this video or camera (default: the validation split in its metadata)")
    from .device.verify import VerifySettings

    add_settings(v, VerifySettings, only=("clips", "runs"))
    v.add_argument("--min-agreement", type=float, default=None,
                   help="fail below this top-1 agreement (default by precision: fp32 0.99, fp16 0.95, int8 0.9)")
    v.add_argument("--max-rel-diff", type=float, default=None,
                   help="fail above this relative logit difference (default by precision: fp32 1e-3, fp16 5e-2)")
    _add_runtime_args(v)
    v.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    v.add_argument("--json-out", help="also save the report as JSON here")
    v.set_defaults(func=cmd_verify)


def _demo_parser(sub) -> None:
    from dataclasses import replace

    from .demo import DemoConfig, demo_minutes
    dflt = DemoConfig()
    epoch_s = 60 * (demo_minutes(replace(dflt, epochs=dflt.epochs + 1)) - demo_minutes(dflt))
    dm = sub.add_parser("demo", help="the whole pipeline on the embedded motion dataset, in minutes on a CPU",
                        description="Write the motion dataset, train the flow teacher, distil the student and train "
                                    "the RGB baseline, print the table, export to ONNX and INT8, run the camera "
                                    "pipeline headless, compare two-stream and student speed, and write report.md. "
                                    "Interrupted, it resumes from the finished stages.")
    dm.add_argument("--out", help="output folder (default runs/demo, or runs/demo-quick with --quick)")
    dm.add_argument("--quick", action="store_true", help="tiny settings: the whole pipeline in a few minutes")
    dm.add_argument("--streaming", action="store_true",
                    help="also distil the streaming student (causal_r3d_18) from the same teacher and score it beside "
                         "the clip student (a stage of its own; adds it to a finished demo folder too)")
    dm.add_argument("--input", help="also run the camera pipeline on this video (any file of yours)")
    dm.add_argument("--seed", type=int,
                    help="seed of the dataset and of training (default 0; other seeds go to runs/demo-seedN)")
    dm.add_argument("--epochs", type=int, metavar="N",
                    help=f"epochs of the RGB baseline and of the student (same budget; default {DemoConfig.epochs}, "
                         f"which keeps the demo near {demo_minutes(dflt):.0f} minutes; each epoch of the two adds "
                         "about "
                         f"{epoch_s:.0f} s on a 2-core CPU)")
    dm.add_argument("--teacher-epochs", type=int, metavar="N",
                    help=f"epochs of the flow teacher (default {DemoConfig.teacher_epochs})")
    dm.add_argument("--flow-camera", choices=FLOW_CAMERA,
                    help=f"the camera's motion removed from the teacher's flow (default {DemoConfig.flow_camera}; "
                         "none: as demos before it was the default)")
    dm.add_argument("--flow-illumination", choices=FLOW_ILLUMINATION,
                    help="changing light taken out of the frames before TV-L1 "
                         f"(default {DemoConfig.flow_illumination})")
    dm.add_argument("--rgb-illumination", choices=RGB_ILLUMINATION,
                    help=f"{RGB_ILLUMINATION_HELP} (default {DemoConfig.rgb_illumination})")
    dm.set_defaults(func=cmd_demo)


def _train_parser(sub) -> None:
    tr = sub.add_parser("train", help="your videos -> teacher, student, table, ONNX and INT8, in one resumable run",
                        description="Check the data, train the flow teacher, distil the student (and the RGB baseline "
                                    "with --baseline), print the table, export ONNX and INT8, write report.md. "
                                    "Interrupted, it resumes from the finished stages. The settings go to "
                                    "OUT/settings.json, which --config takes to reproduce the run.",
                        epilog="example: fts-edge train my_videos --preset small --baseline")
    tr.add_argument("data", nargs="?", help="the video folder (<class>/<video> or {train,val}/<class>/), or the "
                                            "HMDB51/UCF101 video root with --dataset")
    tr.add_argument("--out", help="run folder (default runs/<name of DATA>)")
    from .pipeline import PRESETS
    from .train.config import DEFAULTS as TRAIN_DEFAULTS

    tr.add_argument("--preset", choices=tuple(PRESETS),
                    help="small: the recipe measured on the motion dataset (minutes on a CPU); paper: FTSnet's "
                         "(25x112, full width, SGD lr 0.1; a GPU's work)")
    tr.add_argument("--config", help="a settings.json of an earlier run: every setting from it")
    tr.add_argument("--dataset", choices=("folder", "hmdb51", "ucf101"), help="layout (default folder)")
    tr.add_argument("--splits", help="official split files (hmdb51/ucf101; default DATA)")
    tr.add_argument("--split", type=int, choices=(1, 2, 3), help="official split (default 1)")
    tr.add_argument("--seed", type=int, help="seed of the folder split and of training (default 0)")
    tr.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                    help="horizontal flips (default: off where class names pair directions)")
    tr.add_argument("--baseline", action="store_true", default=None, help="also train the RGB-only network, for the "
                                                                          "table")
    tr.add_argument("--streaming", action="store_true", default=None,
                    help="also distil the streaming student (causal_r3d_18: the camera steps it on every frame)")
    tr.add_argument("--pretrained", help="a torchvision-format r3d_18 state dict to start from (paper preset)")
    tr.add_argument("--epochs", type=int, help="epochs of the student (and baseline)")
    tr.add_argument("--teacher-epochs", type=int, help="epochs of the teacher")
    g = tr.add_argument_group("a hand-held camera and changing light")
    small, paper = PRESETS["small"], PRESETS["paper"]
    g.add_argument("--flow-camera", choices=FLOW_CAMERA,
                   help="remove the camera's motion from the teacher's flow: its median, or a robust affine fit "
                        f"(default: small {small.flow_camera}, paper {paper.flow_camera})")
    g.add_argument("--flow-illumination", choices=FLOW_ILLUMINATION,
                   help="take changing light out of the frames before TV-L1 "
                        f"(default: small {small.flow_illumination}, paper {paper.flow_illumination})")
    g.add_argument("--rgb-illumination", choices=RGB_ILLUMINATION,
                   help=f"{RGB_ILLUMINATION_HELP} (default {small.rgb_illumination})")
    g.add_argument("--augment-light", type=float, help="RGB training: each frame's brightness scaled by up to +-this")
    g.add_argument("--augment-shake", type=float, help="RGB training: a hand-held camera's jitter, RMS pixels a frame")
    g.add_argument("--unlabeled", metavar="DIR",
                   help="videos without labels (any layout; footage of the place the camera will watch): the students "
                        "also follow the teacher on them, with no cross-entropy. Validation videos are refused")
    g.add_argument("--kd", type=float, metavar="WEIGHT",
                   help="the students also learn the teacher's class probabilities (softened at temperature "
                        f"{TRAIN_DEFAULTS.kd_temperature:g}) on every clip: with --unlabeled, the footage teaches "
                        "their classifier too (default 0: off)")
    p = tr.add_argument_group("per person (for camera --track person)")
    p.add_argument("--crop", choices=("frame", "person"),
                   help="person: train on each video's tracked person, cut out as the camera's --track person cuts "
                        "them (the detector and ByteTrack run once over the videos; a folder of `data synth "
                        "--objects` scenes uses the boxes beside each video); default frame")
    p.add_argument("--detector", metavar="hog|MODEL.onnx", help="--crop person's detector (default hog)")
    tr.set_defaults(func=cmd_train)


def _doctor_parser(sub) -> None:
    d = sub.add_parser("doctor", help="what this machine has for the toolkit, and how to fix what is missing",
                       description="Report Python, torch (CUDA), ONNX Runtime providers, TensorRT, cuda-python/pycuda, "
                                   "OpenCV (GStreamer, contrib), cameras, Jetson model and JetPack, each missing piece "
                                   "with its one-line fix. Exit status 1 if something required is missing.")
    d.add_argument("--json", action="store_true", help="one JSON object, for machines")
    d.set_defaults(func=cmd_doctor)


def _bench_parser(sub) -> None:
    b = sub.add_parser("bench", help="benchmarks: the live pipeline, or the flow stage",
                       description="Benchmarks that print a table and save JSON. `bench flow` times OpenCV "
                                   "DualTVL1 and the TVL1 layers side by side on the same pairs.")
    b.add_argument("target", nargs="?", choices=("pipeline", "flow", "stream", "train", "regions", "tracks", "scenes"),
                   default="pipeline",
                   help="what to measure: the pipeline per backend (default), the flow stage, classifying every "
                        "frame (window recompute vs the streaming student), training (stage by stage, extrapolated "
                        "to HMDB51 and UCF101), regions (1, 4, 16 on two inputs, batched against one by one), tracks "
                        "(--track person on --input) or scenes (per-object top-1 on `data synth --objects` scenes)")
    from .bench.settings import BenchSettings

    d = BenchSettings()  # the defaults, declared there
    b.add_argument("--model", help="time this model or engine (.engine, .onnx, .pt) per stage, as trtexec does")
    b.add_argument("--input", help="real footage for timing (a video file)")
    b.add_argument("--video", default=None, help=argparse.SUPPRESS)
    b.add_argument("--device", choices=("cpu", "cuda"), help="--model: ONNX Runtime device")
    b.add_argument("--threads", type=int, help="--model: ONNX Runtime threads (default: all cores)")
    b.add_argument("--sizes", help="flow: frame sizes HxW, comma-separated (default "
                                   + ",".join(f"{h}x{w}" for h, w in d.sizes) + ")")
    b.add_argument("--devices", help="flow: cpu,cuda (default: what exists)")
    b.add_argument("--runs", type=int, help=f"timed rounds (median reported; default {d.runs})")
    b.add_argument("--out", help=f"folder for the JSON and PNG (default {d.out})")
    b.add_argument("--widths", help="pipeline: r3d_18 width multipliers (default " + ",".join(map(str, d.widths)) + ")")
    b.add_argument("--backends", help="pipeline: backends to try (default " + ",".join(d.backends) + ")")
    b.add_argument("--precisions", help="pipeline: precisions to try (default " + ",".join(d.precisions) + ")")
    b.add_argument("--frames", type=int, help=f"pipeline: frames per clip (default {d.frames})")
    b.add_argument("--size", type=int, help=f"pipeline: crop size (default {d.size})")
    b.add_argument("--batch", type=int, help=f"pipeline: batch size (default {d.batch})")
    b.add_argument("--warmup", type=int, help=f"untimed runs first (default {d.warmup})")
    b.add_argument("--classes", type=int, help=f"pipeline: classifier outputs (default {d.classes}, HMDB51)")
    b.add_argument("--no-two-stream", action="store_true", help="pipeline: skip the two-stream comparison")
    b.add_argument("--geometries", help="train: paper and/or demo (default paper,demo)")
    b.add_argument("--workers", help="train: DataLoader worker counts to compare (default 0,2)")
    b.add_argument("--steps", type=int, help=f"train: optimiser steps of each pipeline run (default {d.steps})")
    b.add_argument("--per-class", type=int, help=f"train: videos a class of the generated set (default {d.per_class})")
    b.add_argument("--epoch-rss", metavar="N,N",
                   help="train: instead, the peak memory of one teacher and one student epoch on generated sets of "
                        "N 320x240 videos each (e.g. 50,400), saved as bench_train_rss.json")
    b.add_argument("--video-frames", type=int,
                   help=f"train: frames a video of the generated set (default {d.video_frames})")
    b.add_argument("--regions", help="regions: regions per input, square counts (default 1,4,16)")
    b.add_argument("--every", type=int, help="regions, tracks: classify every N frames (default 5)")
    b.add_argument("--detect-every", type=int, help="tracks: run the person detector every N frames (default 1)")
    b.add_argument("--streaming-model", help="tracks: a streaming student to run after --model")
    b.add_argument("--whole", help="scenes: a whole-frame model to score beside --model (trained with --crop person)")
    b.set_defaults(func=cmd_bench)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="fts-edge",
        description="FTSnet from workstation training to a live camera on a Jetson: a flow teacher "
                    "(TV-L1 layers + 3D ResNet) distilled into an RGB student, exported to ONNX/TensorRT.")
    p.add_argument("--version", action="version", version=f"fts-edge {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log more (debug level)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    dsub = _data_parser(sub)
    _flow_parser(sub)
    _camera_parser(sub)
    _export_parser(sub)
    _build_engine_parser(sub)
    _predict_parser(sub)
    _evaluate_parser(sub)
    _verify_parser(sub)
    _deepstream_parser(sub)
    _demo_parser(sub)
    _train_parser(sub)
    _doctor_parser(sub)
    _bench_parser(sub)
    for name, sp in list(sub.choices.items()) + list(dsub.choices.items()):
        sp.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log more (debug level)")
        if not sp.epilog and name in EXAMPLES:
            sp.epilog = "example: " + EXAMPLES[name]
    return p


EXAMPLES = {
    "deepstream": "fts-edge deepstream engines/student.int8.engine --sources 2 --out deepstream",
    "check": "fts-edge data check --dataset folder --root my_videos",
    "synth": "fts-edge data synth data/motion --per-class 40",
    "flow": "fts-edge flow clip.mp4 --out clip_flow.mp4 --compare-opencv",
    "camera": "fts-edge camera --input /dev/video0 --model engines/student.int8.engine --serve 127.0.0.1:8080",
    "export": "fts-edge export runs/student/best.pt",
    "build-engine": "fts-edge build-engine engines/student.onnx --int8 --calib-input /dev/video0",
    "demo": "fts-edge demo --quick",
    "doctor": "fts-edge doctor --json",
    "bench": "fts-edge bench --model engines/student.int8.engine --input clip.mp4",
    "data": "fts-edge data check --dataset folder --root my_videos",
}


def main(argv=None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    # Our own messages at INFO; other libraries (ONNX Runtime's quantizer is chatty) only when they warn.
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.ERROR, format="%(levelname)s: %(message)s")
    logging.getLogger("fts_edge").setLevel(logging.DEBUG if a.verbose else logging.INFO)
    if not getattr(a, "func", None):
        parser.print_help()
        return 2
    def command():
        return a.func(a)

    return guarded(command)


if __name__ == "__main__":
    sys.exit(main())
