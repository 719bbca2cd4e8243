"""Video decoding, sources by URI, ClipSpec, transforms, datasets and the motion dataset (no torch).

Names below are the package's public face (imported when first used); everything else is private
by convention."""
import importlib

_EXPORTS = {
    "ClipSpec": ".clipspec",
    "read_frames": ".video",
    "probe": ".video",
    "write_video": ".video",
    "open_source": ".sources",
    "open_input": ".sources",
    "Source": ".sources",
    "SyntheticSource": ".sources",
    "preprocess_clip": ".transforms",
    "preprocess_frame": ".transforms",
    "sample_indices": ".transforms",
    "dataset_index": ".datasets",
    "check_dataset": ".datasets",
    "DatasetIndex": ".datasets",
    "VideoItem": ".datasets",
    "video_clips": ".clips",
    "source_clips": ".clips",
    "MOTION_CLASSES": ".synthetic",
    "render_clip": ".synthetic",
    "write_motion_dataset": ".synthetic",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
