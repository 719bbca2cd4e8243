"""Datasets people train on: HMDB51 and UCF101 (official split files), a folder per class, and the
procedural motion dataset.

Every loader reduces to the same thing: a list of ``VideoItem(path, label)`` for each subset and
the class names. ``VideoDataset`` turns items into clips with the one preprocessing path. An
unreadable video never stops an epoch: it is reported once and another video is used in its place.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from ..core.errors import DatasetError, VideoError
from .clipspec import ClipSpec
from .synthetic import MAX_CLASSES, MOTION_CLASSES, class_names, iter_motion_dataset, render_clip
from .transforms import preprocess_clip, sample_indices
from .video import VIDEO_EXTENSIONS, probe, read_frames

log = logging.getLogger(__name__)

DATASETS = ("hmdb51", "ucf101", "folder", "synthetic")


@dataclass(frozen=True)
class VideoItem:
    path: str  # a file, or synthetic://SEED/LABEL/INDEX for a clip rendered on the fly
    label: int


@dataclass
class DatasetIndex:
    classes: List[str]
    train: List[VideoItem]
    test: List[VideoItem]
    flip: bool = True  # whether horizontal flips keep the class (not for left/right motion)
    anomalies: List[str] = field(default_factory=list)  # split-file problems (data check reports them)



# -- HMDB51 ---------------------------------------------------------------------------------
_HMDB_SPLIT = re.compile(r"^(?P<cls>.+)_test_split(?P<k>[123])\.txt$")


def hmdb51_index(root, splits, split: int = 1) -> DatasetIndex:
    """HMDB51: ``root/<class>/<video>.avi`` and ``splits/<class>_test_split<k>.txt`` with lines
    ``<video>.avi <0|1|2>`` (1 train, 2 test, 0 unused in this split)."""
    root, splits = Path(root), Path(splits) if splits else Path(root)
    _need_dir(root, "HMDB51 video root")
    _need_dir(splits, "HMDB51 split folder")
    if split not in (1, 2, 3):
        raise DatasetError(f"HMDB51 has splits 1, 2, 3; got {split}")
    files = sorted(p for p in splits.iterdir() if (m := _HMDB_SPLIT.match(p.name)) and m["k"] == str(split))
    if not files:
        raise DatasetError(f"{splits}: no <class>_test_split{split}.txt files (the official HMDB51 split files)")
    classes = [_HMDB_SPLIT.match(p.name)["cls"] for p in files]
    train, test = [], []
    for label, f in enumerate(files):
        for n, line in enumerate(_split_lines(f), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DatasetError(f"{f}:{n}: expected '<video>.avi <0|1|2>', got {line.strip()!r}")
            item = VideoItem(str(root / classes[label] / parts[0]), label)
            if parts[1] == "1":
                train.append(item)
            elif parts[1] == "2":
                test.append(item)
    return DatasetIndex(classes, train, test, flip=True, anomalies=split_anomalies(classes, train, test))


def split_anomalies(classes: List[str], train: List[VideoItem], test: List[VideoItem]) -> List[str]:
    """What is wrong with a split, as lines: a video in both subsets (it would be tested on what it
    trained on), a class with no training or no test video (an empty or missing split file)."""
    out = []
    both = sorted({i.path for i in train} & {i.path for i in test})
    out += [f"{p}: listed for training and for testing" for p in both]
    for label, c in enumerate(classes):
        n_train = sum(i.label == label for i in train)
        n_test = sum(i.label == label for i in test)
        if n_train == 0 or n_test == 0:
            out.append(f"class {c!r}: {n_train} training and {n_test} test videos in this split")
    return out


# -- UCF101 ---------------------------------------------------------------------------------
def ucf101_index(root, splits, split: int = 1) -> DatasetIndex:
    """UCF101: ``root/<Class>/v_<Class>_gXX_cYY.avi`` and ``splits/{classInd.txt,trainlist0k.txt,
    testlist0k.txt}``. Class folders are matched case-insensitively (the official lists spell
    HandstandPushups two ways)."""
    root, splits = Path(root), Path(splits) if splits else Path(root)
    _need_dir(root, "UCF101 video root")
    if split not in (1, 2, 3):
        raise DatasetError(f"UCF101 has splits 1, 2, 3; got {split}")
    ind = splits / "classInd.txt"
    if not ind.is_file():
        raise DatasetError(f"{ind}: missing (UCF101's official classInd.txt)")
    classes: List[str] = []
    for n, line in enumerate(_split_lines(ind), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != len(classes) + 1:
            raise DatasetError(f"{ind}:{n}: expected '<index> <Class>' numbered from 1, got {line.strip()!r}")
        classes.append(parts[1])
    by_lower = {c.lower(): i for i, c in enumerate(classes)}
    out = {}
    for subset, name in (("train", f"trainlist0{split}.txt"), ("test", f"testlist0{split}.txt")):
        f = splits / name
        if not f.is_file():
            raise DatasetError(f"{f}: missing (UCF101's official split list)")
        items = []
        for n, line in enumerate(_split_lines(f), 1):
            if not line.strip():
                continue
            rel = line.split()[0]
            cls = rel.split("/")[0].lower()
            if cls not in by_lower:
                raise DatasetError(f"{f}:{n}: class {rel.split('/')[0]!r} is not in classInd.txt")
            label = by_lower[cls]
            items.append(VideoItem(str(root / classes[label] / rel.split("/")[-1]), label))
        out[subset] = items
    return DatasetIndex(classes, out["train"], out["test"], flip=True,
                        anomalies=split_anomalies(classes, out["train"], out["test"]))


# -- a folder per class ---------------------------------------------------------------------
def _videos_in(d: Path) -> List[Path]:
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)


def folder_index(root, val_fraction: float = 0.2, seed: int = 0, flip: bool = True) -> DatasetIndex:
    """Users' own videos: ``root/{train,val}/<class>/*`` or ``root/<class>/*`` (then a seeded,
    per-class split holds out ``val_fraction`` of each class)."""
    root = Path(root)
    _need_dir(root, "dataset folder")
    if (root / "train").is_dir():
        classes = sorted(d.name for d in (root / "train").iterdir() if d.is_dir())
        if not classes:
            raise DatasetError(f"{root / 'train'}: no class folders")
        val = root / "val" if (root / "val").is_dir() else root / "test"
        train = [VideoItem(str(p), i) for i, c in enumerate(classes) for p in _videos_in(root / "train" / c)]
        test = [VideoItem(str(p), i) for i, c in enumerate(classes)
                if (val / c).is_dir() for p in _videos_in(val / c)]
        extra = sorted(d.name for d in val.iterdir() if d.is_dir() and d.name not in classes) if val.is_dir() else []
        if extra:
            raise DatasetError(f"{val}: class folders {extra} have no training folder")
        return DatasetIndex(classes, train, test, flip, anomalies=split_anomalies(classes, train, test))
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise DatasetError(f"{root}: no class folders (expected <class>/<video> or train/<class>/<video>)")
    train, test = [], []
    for i, c in enumerate(classes):
        vids = _videos_in(root / c)
        order = np.random.default_rng([seed, i]).permutation(len(vids))
        n_val = int(round(len(vids) * val_fraction))
        for rank, j in enumerate(order):
            (test if rank < n_val else train).append(VideoItem(str(vids[j]), i))
    train, test = sorted(train, key=lambda x: x.path), sorted(test, key=lambda x: x.path)
    return DatasetIndex(classes, train, test, flip, anomalies=split_anomalies(classes, train, test))


# -- the motion dataset ---------------------------------------------------------------------
def synthetic_index(per_class: int = 40, seed: int = 0, num_classes: int = len(MOTION_CLASSES),
                    val_fraction: float = 0.25) -> DatasetIndex:
    """The motion dataset rendered on the fly (no files)."""
    train, test = [], []
    for split, _name, label, i in iter_motion_dataset(per_class, seed, num_classes, val_fraction):
        (train if split == "train" else test).append(VideoItem(f"synthetic://{seed}/{label}/{i}", label))
    return DatasetIndex(class_names(num_classes), train, test, flip=False)


# The settings that rebuild a dataset's split exactly: saved in every checkpoint and bundle, read
# back by export, calibration, the INT8 check and evaluation (index_from_settings).
DATASET_SETTINGS = ("dataset", "root", "splits", "split", "per_class", "num_classes", "seed", "flip")


def index_from_settings(d: dict) -> DatasetIndex:
    """The index a run was trained on, from its saved settings (a checkpoint's config or a
    bundle's "dataset"): the same layout, split, seed and flip policy."""
    dataset = d.get("dataset") or "synthetic"
    seed = int(d.get("seed") or 0) if dataset == "folder" else 0  # only a folder's split depends on the seed
    return dataset_index(dataset, d.get("root"), d.get("splits"), d.get("split") or 1, seed,
                         d.get("per_class") or 40, d.get("num_classes") or len(MOTION_CLASSES), d.get("flip"))


UNLABELED = -1  # the label of a video with none: the student follows the teacher on it, no cross-entropy


def unlabeled_items(folder, index: DatasetIndex) -> List[VideoItem]:
    """Every video under ``folder`` (searched recursively, any layout) as ``VideoItem(path,
    UNLABELED)``, for the student to follow the teacher on. Videos of the labeled training set are
    left out (they are there already, with their labels); a validation video is refused, because
    following the teacher on it would let the validation clips into training.

    Raises:
        DatasetError: the folder is missing, has no videos, or holds validation videos.
    """
    root = Path(folder)
    _need_dir(root, "--unlabeled folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    if not files:
        raise DatasetError(f"{root}: no videos ({', '.join(VIDEO_EXTENSIONS)}) under it for --unlabeled")

    def key(p) -> str:
        return str(Path(p).resolve())

    held_out = {key(i.path) for i in index.test if "://" not in i.path}
    shared = [p for p in files if key(p) in held_out]
    if shared:
        raise DatasetError(f"{root}: {len(shared)} of its videos are validation videos (e.g. {shared[0]}); "
                           "--unlabeled must not hold the videos the table is measured on")
    labeled = {key(i.path) for i in index.train if "://" not in i.path}
    items = [VideoItem(str(p), UNLABELED) for p in files if key(p) not in labeled]
    if not items:
        raise DatasetError(f"{root}: every video under it is in the labeled training set already; --unlabeled "
                           "takes other videos")
    return items


_DIRECTION_WORDS = (("left", "right"), ("clockwise", "counterclockwise"), ("clockwise", "anticlockwise"),
                    ("cw", "ccw"))


def direction_pairs(classes: List[str]) -> List[Tuple[str, str]]:
    """Pairs of classes whose names differ by a horizontal direction (swipe_left / swipe_right,
    rotate_cw / rotate_ccw): a horizontal flip turns one into the other."""
    def words(c):
        return re.split(r"[^a-z]+", c.lower().replace("counter_clockwise", "counterclockwise")
                        .replace("counter-clockwise", "counterclockwise").replace("anti_clockwise", "anticlockwise"))

    out = []
    for a in classes:
        for b in classes:
            wa, wb = words(a), words(b)
            if a < b and len(wa) == len(wb):
                diff = [(x, y) for x, y in zip(wa, wb) if x != y]
                if len(diff) == 1 and (diff[0] in _DIRECTION_WORDS or diff[0][::-1] in _DIRECTION_WORDS):
                    out.append((a, b))
    return out


_FLIPS_SAID: set = set()  # folders whose automatic "flips off" was logged: once a process, not per stage


def resolve_flip(classes: List[str], flip: Optional[bool], where: str) -> bool:
    """Horizontal flips for training: off where class names pair directions (unless forced on,
    which is warned about), on otherwise."""
    pairs = direction_pairs(classes)
    if flip is None:
        if pairs and where not in _FLIPS_SAID:
            _FLIPS_SAID.add(where)
            log.info("%s: horizontal flips off: %s would turn into each other", where,
                     ", ".join(f"{a}/{b}" for a, b in pairs[:3]))
        return not pairs
    if flip and pairs:
        log.warning("%s: horizontal flips are on but %s differ only by direction: a flipped clip gets the wrong "
                    "label (use --no-flip)", where, ", ".join(f"{a}/{b}" for a, b in pairs[:3]))
    return bool(flip)


def dataset_index(
    dataset: str,
    root=None,
    splits=None,
    split: int = 1,
    seed: int = 0,
    per_class: int = 40,
    num_classes: int = len(MOTION_CLASSES),
    flip: Optional[bool] = None,
) -> DatasetIndex:
    """Build the index of any supported dataset. For ``synthetic``: with ``root``, the motion
    dataset written to disk by ``fts-edge data synth``; without it, rendered on the fly. ``flip``:
    None decides from the class names (resolve_flip); True/False force it.

    Args:
        dataset: hmdb51, ucf101, folder or synthetic.
        root: the video root (synthetic: a written motion dataset, or None to render).
        splits: the split files' folder (hmdb51, ucf101; default ``root``).
        split: the official split, 1 to 3.
        seed: a folder's held-out draw.
        per_class, num_classes: the motion dataset rendered on the fly.
        flip: horizontal flips in training (None: decided from the class names).

    Returns:
        The DatasetIndex: classes, train and test items, flips, split anomalies.
    """
    if dataset in ("hmdb51", "ucf101", "folder"):
        idx = (hmdb51_index(_need_root(root, dataset), splits, split) if dataset == "hmdb51" else
               ucf101_index(_need_root(root, dataset), splits, split) if dataset == "ucf101" else
               folder_index(_need_root(root, dataset), seed=seed))
        idx.flip = resolve_flip(idx.classes, flip, str(root))
        return idx
    if dataset == "synthetic":
        if root is None:
            return synthetic_index(per_class, seed, num_classes)
        if not Path(root).is_dir():
            raise DatasetError(f"{root}: no motion dataset there; write one with `fts-edge data synth {root}`")
        idx = folder_index(root, seed=seed, flip=False)
        known = set(class_names(MAX_CLASSES))
        unknown = [c for c in idx.classes if c not in known]
        if unknown:
            raise DatasetError(f"{root}: {unknown} are not motion-dataset classes; use --dataset folder")
        return idx
    raise DatasetError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")


def _split_lines(path: Path) -> List[str]:
    """The lines of a split file; a file that is not text is one clear error naming it."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not a text split file (byte {e.start} is not UTF-8); use the official "
                           "split files as distributed")


def _need_root(root, dataset):
    if root is None:
        raise DatasetError(f"--root is required for the {dataset} dataset")
    return root


def _need_dir(p: Path, what: str):
    if not p.is_dir():
        raise DatasetError(f"{p}: {what} not found")


# -- frames and clips -----------------------------------------------------------------------
def load_frames(item: VideoItem, spec: ClipSpec) -> np.ndarray:
    """Decoded frames of an item, short side already scaled to ``spec.resize``. A motion clip
    rendered on the fly is drawn at that size directly, a few frames longer than one clip."""
    if item.path.startswith("synthetic://"):
        seed, label, index = (int(x) for x in item.path[len("synthetic://"):].split("/"))
        return render_clip(label, seed, index, max(16, spec.span + 4), spec.resize, spec.resize)
    # the frames that decode are the video: a container that declares more (common in public
    # datasets) is used as it decodes, and `data check` lists it with both counts
    return read_frames(item.path, resize_short=spec.resize, strict=False)




def centre_clips(items: List[VideoItem], spec: ClipSpec, limit: Optional[int] = None):
    """The centre clip of each readable item (unreadable ones skipped), preprocessed for
    evaluation: (clips float32 (N, 3, T, S, S) or None, labels (N,)). With ``limit`` below the
    number of items, the items are taken evenly spaced through the list, not the first ones: lists
    are ordered by class, and the first N would leave the last classes out of every check."""
    if limit is not None and 0 < limit < len(items):
        picks = [int(i) for i in np.unique(np.linspace(0, len(items) - 1, limit).round())]
        chosen = set(picks)  # the rest follow, in case some of the picked ones cannot be read
        items = [items[i] for i in picks] + [it for i, it in enumerate(items) if i not in chosen]
    clips, labels = [], []
    for item in items:
        if limit is not None and len(clips) >= limit:
            break
        try:
            frames = load_frames(item, spec)
        except VideoError:
            continue
        (ix,) = sample_indices(len(frames), spec, "center")
        clips.append(preprocess_clip(frames[ix], spec))
        labels.append(item.label)
    if not clips:
        return None, np.zeros(0, np.int64)
    return np.stack(clips).astype(np.float32), np.array(labels)


def check_dataset(index: DatasetIndex, spec: Optional[ClipSpec] = None, progress=None) -> dict:
    """Decode every video once. Returns classes, per-subset readable counts and every unreadable
    file with its reason (the report of ``fts-edge data check``)."""
    spec = spec or ClipSpec()
    report = {"classes": len(index.classes), "class_names": list(index.classes), "train": 0, "test": 0,
              "unreadable": [], "per_class": {c: {"train": 0, "test": 0} for c in index.classes},
              "frames": {"min": None, "max": None}}
    jobs = [("train", it) for it in index.train] + [("test", it) for it in index.test]
    bar = progress(jobs, desc="decoding", unit="video") if progress else jobs
    lo, hi = None, None
    report["declared_more_than_decode"] = []
    for subset, item in bar:
        try:
            if item.path.startswith("synthetic://"):
                n = len(load_frames(item, ClipSpec(frames=spec.frames, size=8, resize=8)))
            else:
                p = probe(item.path)
                n = p["frames"]
                if p["declared_frames"] > n:
                    report["declared_more_than_decode"].append({"path": item.path, "frames": n,
                                                                "declared": p["declared_frames"]})
        except VideoError as e:
            report["unreadable"].append({"path": item.path, "reason": str(e).replace(item.path + ": ", "", 1)})
            continue
        report[subset] += 1
        report["per_class"][index.classes[item.label]][subset] += 1
        lo, hi = (n if lo is None else min(lo, n)), (n if hi is None else max(hi, n))
    report["frames"] = {"min": lo, "max": hi}
    return report


