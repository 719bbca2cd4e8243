"""From checkpoint to edge artifact: what `fts-edge export` and `fts-edge build-engine` do.

build-engine does everything up to the engine on any machine (export, parity, calibration,
Q/DQ INT8 ONNX, ONNX Runtime checks); the engine itself is built only where TensorRT and a GPU
are, and elsewhere it stops with a TensorRTUnavailable (exit status 3) after saying what it made.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from .checkpoint import read_metadata
from .clipspec import ClipSpec
from .errors import ExportError, FtsError
from .video import sample_video

log = logging.getLogger(__name__)
DEFAULT_MODELS = ("engines/student.onnx", "runs/demo/student/best.pt")


def find_default_model() -> str:
    for p in DEFAULT_MODELS:
        if Path(p).exists():
            return p
    raise FtsError("no model given and none found at " + " or ".join(DEFAULT_MODELS) +
                   "; pass an ONNX or a checkpoint (train one with `fts-edge demo` or train/train_student.py)")


def dataset_index_from_meta(meta: Dict):
    from .datasets import dataset_index

    d = meta.get("dataset") or {}
    if not d.get("dataset"):
        return None
    try:
        return dataset_index(d["dataset"], d.get("root"), d.get("splits"), d.get("split") or 1,
                             per_class=d.get("per_class") or 40, num_classes=d.get("num_classes") or 10)
    except FtsError as e:
        log.warning("the training dataset is not reachable here (%s): checks use real footage only", e)
        return None


def export(ckpt, out=None, batch: int = 1, dynamic_batch: bool = False, video: Optional[str] = None) -> Dict:
    from .checkpoint import bundle_metadata, load_checkpoint
    from .export import export_onnx, real_clips

    ck = load_checkpoint(ckpt)
    spec = ClipSpec.from_dict(ck["clip_spec"])
    index = dataset_index_from_meta(bundle_metadata(ck))  # parity on the validation split it was trained for
    clips = real_clips(spec, index, video or sample_video())
    return export_onnx(ckpt, out, batch=batch, dynamic_batch=dynamic_batch, parity_clips=clips)


def calibration_clips(spec: ClipSpec, meta: Dict, calib_data: Optional[str], calib_video: Optional[str],
                      calib_camera: Optional[str], n: int, seed: int = 0) -> np.ndarray:
    """Preprocessed clips for INT8 calibration: the training split (default), a video, or frames
    from the deployment camera itself. The same preprocessing the camera app applies."""
    from .datasets import centre_clips
    from .transforms import preprocess_clip, preprocess_frame, sample_indices
    from .video import read_frames

    if calib_camera:
        from .sources import open_source
        src = open_source(calib_camera)
        frames = []
        try:
            for frame in src.frames():
                frames.append(preprocess_frame(frame, spec))
                if len(frames) >= n * spec.frames:
                    break
        finally:
            src.close()
        if len(frames) < spec.frames:
            raise ExportError(f"{calib_camera}: only {len(frames)} frames captured for calibration")
        k = len(frames) // spec.frames
        return np.stack([np.stack(frames[i * spec.frames:(i + 1) * spec.frames], 1) for i in range(k)]).astype(np.float32)
    if calib_video:
        frames = read_frames(calib_video, resize_short=spec.resize)
        return np.stack([preprocess_clip(frames[ix], spec)
                         for ix in sample_indices(len(frames), spec, "multi", num_clips=n)]).astype(np.float32)
    if calib_data:  # a folder of videos ({train,val}/<class>/ or <class>/): its training part
        from .datasets import folder_index
        index = folder_index(calib_data)
    else:
        index = dataset_index_from_meta(meta)
        if index is None:
            if sample_video():
                log.warning("no training data reachable: calibrating on %s", sample_video())
                return calibration_clips(spec, meta, None, sample_video(), None, n)
            raise ExportError("no calibration data: pass --calib-data DIR, --calib-video PATH or --calib-camera DEV")
    rng = np.random.default_rng(seed)
    clips, _ = centre_clips([index.train[i] for i in rng.permutation(len(index.train))], spec, limit=n)
    if clips is None:
        raise ExportError("no readable calibration clips in the training split")
    return clips


def validation_set(spec: ClipSpec, meta: Dict, limit: int = 200):
    """(clips, labels) of the validation split for accuracy checks, or (None, None)."""
    from .datasets import centre_clips

    index = dataset_index_from_meta(meta)
    if index is None:
        return None, None
    clips, labels = centre_clips(index.test, spec, limit)
    return (clips, labels) if clips is not None else (None, None)


def build_engine(model: Optional[str] = None, fp16: bool = False, int8: bool = False, workspace_mb: int = 1024,
                 timing_cache: Optional[str] = None, calib_data=None, calib_video=None, calib_camera=None,
                 calib_clips: int = 128, calib_method: str = "minmax", keep_stem_fp: bool = True,
                 min_agreement: float = 0.9, force: bool = False, progress=None, say=print) -> Dict:
    from . import engine as trt_engine
    from .export import metadata_path
    from .quantize import check_int8, fp16_onnx, quantize_int8, write_int8_metadata

    model = model or find_default_model()
    report: Dict = {"steps": []}
    if not Path(model).exists():
        raise FtsError(f"{model}: no such ONNX or checkpoint")
    if str(model).endswith(".onnx"):
        onnx_path = Path(model)
        _check_onnx_file(onnx_path)
    else:
        exp = export(model)
        onnx_path = Path(exp["onnx"])
        report["export"] = exp
        say(f"exported {onnx_path} (parity with PyTorch on {exp['parity']['clips']} real clips: "
            f"top-1 {exp['parity']['top1_agreement']:.0%}, max rel diff {exp['parity']['max_rel_diff']:.1e})")
    meta = read_metadata(metadata_path(onnx_path))
    spec = ClipSpec.from_dict(meta["clip_spec"])
    precisions = [p for p, on in (("fp16", fp16), ("int8", int8)) if on] or ["fp16"]
    engine_inputs = {}
    if "int8" in precisions:
        clips = calibration_clips(spec, meta, calib_data, calib_video, calib_camera, calib_clips)
        vx, vy = validation_set(spec, meta)
        if vx is None:
            from .export import real_clips
            vx = real_clips(spec, None, sample_video())
        report["int8"] = {}
        for flavor in ("tensorrt", "cpu"):
            q = quantize_int8(onnx_path, clips, method=calib_method, keep_stem_fp=keep_stem_fp, progress=progress,
                              flavor=flavor)
            q["check"] = check_int8(onnx_path, q["int8_onnx"], vx, vy, min_agreement=min_agreement)
            write_int8_metadata(meta, q["int8_onnx"], q)
            report["int8"][flavor] = q
            c = q["check"]
            acc = (f", accuracy fp32 {c['fp32_top1']:.1f}% vs int8 {c['int8_top1']:.1f}%" if "int8_top1" in c else "")
            use = "for TensorRT" if flavor == "tensorrt" else "for ONNX Runtime on x86 CPUs"
            say(f"wrote {q['int8_onnx']} ({use}: Q/DQ, {q['method']} calibration on {q['calibration_clips']} clips; "
                f"top-1 agreement with fp32 {c['top1_agreement']:.1%} on {c['clips']} clips{acc})")
        engine_inputs["int8"] = report["int8"]["tensorrt"]["int8_onnx"]
    if "fp16" in precisions:
        f = fp16_onnx(onnx_path)
        report["fp16"] = f
        if f.get("fp16_onnx"):
            from .checkpoint import write_metadata
            write_metadata(metadata_path(f["fp16_onnx"]), {**meta, "precision": "fp16"})
            say(f"wrote {f['fp16_onnx']} (fp16 weights, for CUDA runtimes)")
        engine_inputs["fp16"] = str(onnx_path)  # TensorRT builds FP16 from the fp32 graph
    report["engines"] = {}
    for prec, src in engine_inputs.items():
        res = trt_engine.build_engine(src, prec, workspace_mb, timing_cache, force=force)
        report["engines"][prec] = res
        by = res["layers"]["convolutions_by_precision"]
        say(f"{'reused' if res['reused'] else 'built'} {res['engine']} for {res['gpu']} (TensorRT {res['tensorrt']}); "
            f"convolutions by precision actually chosen: {by}")
    return report


def _check_onnx_file(path: Path):
    import onnx

    try:
        onnx.checker.check_model(onnx.load(str(path)))
    except Exception as e:
        raise ExportError(f"{path}: not a valid ONNX model ({type(e).__name__}: {str(e).splitlines()[0][:160]})")
