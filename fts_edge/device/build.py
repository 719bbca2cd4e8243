"""From checkpoint to edge artifact: what `fts-edge export` and `fts-edge build-engine` do.

build-engine does everything up to the engine on any machine (export from a checkpoint, parity,
calibration, the Q/DQ INT8 ONNX and its check in ONNX Runtime); the engine itself is built only
where TensorRT and a GPU are, and elsewhere it stops with TensorRTUnavailable (exit status 3)
after saying what it made. From an ONNX it needs no torch.

An INT8 model and its metadata are committed together, and only once the INT8 check has passed:
a model that fails it is kept as NAME.int8.rejected.onnx (which no command loads by default) and
the previous good pair is left as it was.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

from ..core.errors import ExportError, FtsError, UsageError, first_line
from ..core.settings import Settings, setting
from ..data.clipspec import ClipSpec
from .bundle import load_bundle, metadata_path
from .quantize import CALIB_MEMORY_MB, METHODS

log = logging.getLogger(__name__)
def _commit_int8(fp32_meta: Dict, candidate: Path, final: Path, report: Dict) -> None:
    """The checked candidate with its bundle inside, committed with its JSON (bundle.write_onnx)."""
    import onnx

    from .bundle import write_onnx
    from .quantize import int8_metadata

    write_onnx(final, onnx.load(str(candidate)), int8_metadata(fp32_meta, {**report, "int8_onnx": str(final)}))


def make_int8(onnx_path: Path, meta: Dict, clips, val_clips, val_labels, flavor: str, calib_method: str,
              keep_stem_fp: bool, min_agreement: float, progress=None, memory_mb: int = CALIB_MEMORY_MB,
              keep_fp=()) -> Dict:
    """Calibrate, check against fp32 and commit one INT8 flavour; a failed check keeps the model
    as NAME.int8(.cpu).rejected.onnx and raises, leaving the previous pair untouched.

    Args:
        onnx_path: the fp32 ONNX (a streaming student's frame stage, its other stages beside it).
        meta: its checked bundle.
        clips: calibration clips.
        val_clips, val_labels: the check's clips (labels may be None).
        flavor: tensorrt or cpu (quantize.py says how they differ).
        calib_method: minmax, entropy or percentile.
        keep_stem_fp: the stem stays in float (quantize.quantize_int8 says which, per flavour).
        min_agreement: the check's threshold.
        progress: a progress factory, or None.
        memory_mb: what histogram calibration may hold.
        keep_fp: more Conv nodes to keep in float (a single-graph model only).

    Returns:
        The quantization report with its ``check``.
    """
    from .quantize import check_int8, int8_path, quantize_int8

    final = int8_path(onnx_path, flavor)
    candidate = final.with_name(f".{final.name}.{os.getpid()}.candidate.onnx")
    stream = meta.get("streaming")
    from .streamplan import STAGES, stage_file
    names = STAGES if stream else STAGES[:1]  # a streaming student is quantized stage by stage
    try:
        if stream:  # each stage calibrated on the feeds stepping real clips gives it
            from .streamplan import onnx_stages, step_feeds
            feeds = step_feeds(onnx_stages(onnx_path, ["CPUExecutionProvider"]), clips, stream)
            parts = [quantize_int8(stage_file(onnx_path, n), feeds[k], out=stage_file(candidate, n),
                                   method=calib_method, keep_stem_fp=keep_stem_fp and k == 0, flavor=flavor,
                                   memory_mb=memory_mb) for k, n in enumerate(STAGES)]
            q = {**parts[0], "calibration_clips": len(clips), "calibration_steps": len(feeds[0]),
                 "qdq": {op: sum(p["qdq"][op] for p in parts) for op in ("QuantizeLinear", "DequantizeLinear")},
                 "stages": {n: {"qdq": p["qdq"], "calibration_feeds": p["calibration_clips"],
                                "residuals_rewired": p["residuals_rewired"]} for n, p in zip(STAGES, parts)}}
        else:
            q = quantize_int8(onnx_path, clips, out=candidate, method=calib_method, keep_stem_fp=keep_stem_fp,
                              progress=progress, flavor=flavor, memory_mb=memory_mb, keep_fp=keep_fp)
        try:
            q["check"] = check_int8(onnx_path, candidate, val_clips, val_labels, min_agreement=min_agreement)
        except ExportError:
            rejected = final.with_name(final.name.replace(".onnx", ".rejected.onnx"))
            for n in names:
                os.replace(stage_file(candidate, n), stage_file(rejected, n))
            raise ExportError(f"{final.name} not written: INT8 agreement with fp32 below {min_agreement:.0%} "
                              f"(kept for inspection as {rejected}); calibrate on more or other clips "
                              "(--calib-clips, --calib-input, --calib-method)") from None
        q["int8_onnx"] = str(final)
        if stream:  # the other stages land first, recorded by sha256: the frame stage's commit is the last step
            from ..core.artifacts import sha256_file
            stages = [dict(st) for st in stream["stages"]]
            for st in stages[1:]:
                st["sha256"] = sha256_file(stage_file(candidate, st["name"]))
                os.replace(stage_file(candidate, st["name"]), stage_file(final, st["name"]))
            meta = {**meta, "streaming": {**stream, "stages": stages}}
        _commit_int8(meta, candidate, final, q)
        return q
    finally:
        for n in names:
            for t in (stage_file(candidate, n), metadata_path(stage_file(candidate, n))):
                if t.exists():
                    t.unlink()


@dataclass(frozen=True)
class BuildSettings(Settings):
    """What `fts-edge build-engine` makes and how, built once from the flags and checked here.

    Args:
        fp16, int8: the engines to build (neither: fp16).
        workspace_mb: TensorRT's workspace.
        timing_cache: a TensorRT timing cache file, reused across builds.
        calib_data: a folder of videos to calibrate on (default: the training split in the bundle).
        calib_input: a video or camera to calibrate on (and to check INT8 on without the split).
        calib_clips: calibration clips; calib_method: minmax, entropy or percentile.
        keep_stem_fp: the stem convolution stays in float (both INT8 flavours).
        min_agreement: the INT8 model must agree with fp32 on at least this share of clips.
        force: rebuild an engine that matches; onnx_only: stop before the engine.
        max_batch: the largest batch of a dynamic-batch ONNX's optimization profile.
        calib_memory_mb: the memory entropy and percentile calibration may take.
    """

    fp16: bool = False
    int8: bool = False
    workspace_mb: int = setting(1024, lo=16, flag="--workspace")
    timing_cache: Optional[str] = None
    calib_data: Optional[str] = None
    calib_input: Optional[str] = None
    calib_clips: int = setting(128, lo=1, help="calibration clips")
    calib_method: str = "minmax"
    keep_stem_fp: bool = True
    min_agreement: float = setting(0.9, lo=0.0, hi=1.0)
    force: bool = False
    onnx_only: bool = False
    max_batch: int = setting(8, lo=1, hi=256)
    calib_memory_mb: int = setting(CALIB_MEMORY_MB, lo=64, help="histogram calibration keeps every activation of every "
                                                                "clip")

    def __post_init__(self):
        super().__post_init__()
        if self.calib_method not in METHODS:
            raise UsageError(f"--calib-method must be one of {', '.join(METHODS)}, got {self.calib_method!r}")

    @property
    def precisions(self):
        return [p for p, on in (("fp16", self.fp16), ("int8", self.int8)) if on] or ["fp16"]


def build_engine(model: Optional[str] = None, settings: Optional[BuildSettings] = None, progress=None,
                 say=print) -> Dict:
    """From an fp32 ONNX (``model``; default: the first found in engines/ or runs/): the INT8 Q/DQ
    models (TensorRT and CPU flavours) checked against fp32 before they are committed, an fp16
    copy, and the TensorRT engine of each precision where TensorRT and a GPU are (elsewhere
    TensorRTUnavailable, exit status 3, after saying what was made). Returns the report."""
    s = settings or BuildSettings()
    from ..data.clips import calibration_clips, source_clips, validation_set
    from . import engine as trt_engine
    from .locate import BUILD_FROM, default_model
    from .quantize import fp16_onnx

    model = model or default_model(BUILD_FROM, checkpoint=False)
    report: Dict = {}
    if not Path(model).exists():
        raise FtsError(f"{model}: no such ONNX")
    if not str(model).endswith(".onnx"):
        raise FtsError(f"{model}: engines are built from an exported ONNX; export it first (fts-edge export), or give "
                       "fts-edge build-engine the checkpoint, which exports it for you")
    onnx_path = Path(model)
    _check_onnx_file(onnx_path)
    meta = load_bundle(onnx_path)
    if meta.get("precision", "fp32") != "fp32":
        raise FtsError(f"{onnx_path}: a {meta['precision']} model; build engines from the fp32 ONNX it was made from "
                       f"({meta.get('parent_onnx') or meta.get('parent') or 'NAME.onnx'})")
    if meta["role"] == "teacher":
        raise FtsError(f"{onnx_path}: a flow teacher; engines are built for the RGB student the camera runs")
    spec = ClipSpec.from_dict(meta["clip_spec"])
    precisions = s.precisions
    engine_inputs = {}
    if "int8" in precisions:
        clips = calibration_clips(spec, meta, s.calib_data, s.calib_input, s.calib_clips)
        vx, vy = validation_set(spec, meta)
        if vx is None:  # no validation split here: check on the deployment input itself, never on noise
            if not s.calib_input:
                raise ExportError("no validation data for the INT8 check: pass --calib-input VIDEO or a camera "
                                  "(e.g. /dev/video0), or run where the training dataset is")
            vx = source_clips(s.calib_input, spec, max(8, min(32, s.calib_clips)))
        else:
            report["fp32_check"] = check_as_trained(onnx_path, meta, vx, vy)
        report["int8"] = {}
        for flavor in ("tensorrt", "cpu"):
            q = make_int8(onnx_path, meta, clips, vx, vy, flavor, s.calib_method, s.keep_stem_fp, s.min_agreement,
                          progress, s.calib_memory_mb)
            report["int8"][flavor] = q
            c = q["check"]
            acc = (f", accuracy fp32 {c['fp32_top1']:.1f}% vs int8 {c['int8_top1']:.1f}%" if "int8_top1" in c else "")
            use = "for TensorRT" if flavor == "tensorrt" else "for ONNX Runtime on x86 CPUs"
            kept = f"; in float: {', '.join(q['kept_in_float'])}" if q.get("kept_in_float") else ""
            say(f"wrote {q['int8_onnx']} ({use}: {q['qdq']['QuantizeLinear']} Q/DQ pairs, {q['method']} calibration "
                f"on {q['calibration_clips']} clips; top-1 agreement with fp32 {c['top1_agreement']:.1%} on "
                f"{c['clips']} clips{acc}{kept})")
        engine_inputs["int8"] = report["int8"]["tensorrt"]["int8_onnx"]
    if "fp16" in precisions:
        fmeta = {k: v for k, v in meta.items() if k != "onnx_sha256"}
        fmeta.update(precision="fp16", parent_sha256=meta.get("onnx_sha256"))
        out16 = onnx_path.with_name(onnx_path.name.replace(".onnx", "") + ".fp16.onnx")
        if meta.get("streaming"):  # every stage in fp16 beside the frame stage's, recorded by sha256
            from ..core.artifacts import sha256_file
            from .streamplan import stage_file
            stages = [dict(st) for st in meta["streaming"]["stages"]]
            for st in stages[1:]:
                out = stage_file(out16, st["name"])
                if not fp16_onnx(stage_file(onnx_path, st["name"]), out=out).get("fp16_onnx"):
                    break
                st["sha256"] = sha256_file(out)
            fmeta["streaming"] = {**meta["streaming"], "stages": stages}
        f = fp16_onnx(onnx_path, out=out16, meta=fmeta)
        report["fp16"] = f
        if f.get("fp16_onnx"):
            say(f"wrote {f['fp16_onnx']} (fp16 weights, for CUDA runtimes)")
        engine_inputs["fp16"] = str(onnx_path)  # TensorRT builds FP16 from the fp32 graph
    report["engines"] = {}
    if s.onnx_only:
        say("--onnx-only: no TensorRT engine built; on the device run: fts-edge build-engine "
            f"{onnx_path} {' '.join('--' + p for p in precisions)}")
        return report
    for prec, src in engine_inputs.items():
        out = trt_engine.engine_path(onnx_path, prec)
        if meta.get("streaming"):  # one engine per stage, the frame stage's (which loads the others) last
            from .streamplan import STAGES, stage_file
            for name in (*STAGES[1:], STAGES[0]):
                res = trt_engine.build_tensorrt_engine(src, prec, s.workspace_mb, s.timing_cache, force=s.force,
                                                       max_batch=s.max_batch, out=stage_file(out, name),
                                                       rebuild_from=onnx_path, stage=name)
        else:
            def build(src, prec=prec, out=out):
                return trt_engine.build_tensorrt_engine(src, prec, s.workspace_mb, s.timing_cache, force=s.force,
                                                        max_batch=s.max_batch, out=out, rebuild_from=onnx_path)
            try:
                res = build(src)
            except trt_engine.Int8LayersUnbuildable as e:
                # once: the convolutions TensorRT named kept in float, quantized and checked again
                say(f"TensorRT could not build {len(e.nodes)} convolution(s) in INT8 ({', '.join(e.nodes)}): "
                    "quantizing again with them kept in FP16, then building once more")
                q = make_int8(onnx_path, meta, clips, vx, vy, "tensorrt", s.calib_method, s.keep_stem_fp,
                              s.min_agreement, progress, s.calib_memory_mb, keep_fp=e.nodes)
                report["int8"]["tensorrt"] = q
                res = build(q["int8_onnx"])
                res["kept_in_fp16_after_a_failed_build"] = e.nodes
        report["engines"][prec] = res
        m = res["metadata"]
        say(f"{'reused' if res['reused'] else 'built'} {res['engine']} for {m['engine']['gpu']} (TensorRT "
            f"{m['engine']['tensorrt']}): {trt_engine.summary_line(m['layers'])}")
    return report


def check_as_trained(onnx_path: Path, meta: Dict, clips, labels) -> Dict:
    """The fp32 model on its validation split must score near what training measured there (the
    bundle's ``validation``): a bundle whose preprocessing is not the model's (a mean, a size that
    was edited, in the model and beside it alike) classifies the same clips far worse. Refused
    below halfway from chance to the trained top-1 (and two standard errors more); returns the
    figures where it passes."""
    import numpy as np

    from .onnxrt import ort_session, run_onnx
    from .streamplan import onnx_stages, stepped_logits

    trained = meta.get("validation") or {}
    if trained.get("top1") is None or labels is None or len(labels) < 20:
        return {"checked": False}
    if meta.get("streaming"):
        logits = stepped_logits(onnx_stages(onnx_path, ["CPUExecutionProvider"]), clips, meta["streaming"])
    else:
        logits = run_onnx(ort_session(onnx_path, ["CPUExecutionProvider"]), clips)
    top1 = float((logits.argmax(1) == labels).mean() * 100)
    chance = 100.0 / len(meta["classes"])
    noise = 200.0 * float(np.sqrt(max(top1, 1.0) / 100 * (1 - min(top1, 99.0) / 100) / len(labels)))
    floor = chance + 0.5 * (trained["top1"] - chance) - noise
    rep = {"checked": True, "top1": top1, "trained_top1": trained["top1"], "clips": int(len(labels)), "floor": floor}
    if trained["top1"] > chance + 2 * noise and top1 < floor:
        raise ExportError(f"{onnx_path}: scores {top1:.1f}% top-1 on {len(labels)} clips of its validation split, "
                          "where "
                          f"training measured {trained['top1']:.1f}% (chance {chance:.1f}%): the clip_spec in its "
                          "bundle "
                          "(mean, std, size, frames) is not what it was trained with, or the split has changed; export "
                          "it again from its checkpoint")
    return rep


def _check_onnx_file(path: Path):
    import onnx

    from .bundle import _load_proto

    proto = _load_proto(path)  # one line for a file that is not ONNX at all
    try:
        onnx.checker.check_model(proto)
    except Exception as e:
        raise ExportError(f"{path}: not a valid ONNX model ({type(e).__name__}: {first_line(e, 160)})")
