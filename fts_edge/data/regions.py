"""Regions of a frame that are classified on their own: fixed regions a user names (a bench, a
door) and the boxes of tracked people, and the one crop rule both training and the camera use.

A fixed region is cut out exactly and then treated as a whole frame is (short side resized, centre
crop: ``preprocess_frame``). A tracked person is cut as a *tube*: one square for every frame of a
clip, around everywhere the person's box was during the clip (``CONTEXT`` times the longer side of
the boxes' union, centred on it, black beyond the frame's edge). The same square on every frame
keeps the motion in the clip: a crop that followed the box frame by frame would cancel the
person's own movement across the view, and with it what a motion-trained network reads.
``fts-edge train --crop person`` cuts its training clips with the same rule (``tube``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core.errors import UsageError

CONTEXT = 1.25  # a person's square crop: this times the box's longer side
CROPS = ("frame", "person")  # what a model was trained on: whole frames, or person-centred squares

Box = Tuple[int, int, int, int]  # x, y, w, h in pixels


@dataclass(frozen=True)
class Region:
    """A named rectangle: pixels, or fractions of the frame where every value is at most 1."""

    name: str
    box: Tuple[float, float, float, float]  # x, y, w, h

    @property
    def fractional(self) -> bool:
        return all(0.0 <= v <= 1.0 for v in self.box)

    def pixels(self, width: int, height: int) -> Box:
        """The region in pixels of a frame ``width`` x ``height``; an error if it is not inside."""
        x, y, w, h = self.box
        if self.fractional:
            x, y, w, h = x * width, y * height, w * width, h * height
        x, y, w, h = (int(round(v)) for v in (x, y, w, h))
        if w < 2 or h < 2 or x < 0 or y < 0 or x + w > width or y + h > height:
            raise UsageError(f"region {self.name!r} ({fmt_box(self.box)}) is not inside the "
                             f"{width}x{height} frame (x,y,w,h in pixels, or fractions of the frame)")
        return x, y, w, h


def fmt_box(box: Sequence[float]) -> str:
    return ",".join(f"{v:g}" for v in box)


def parse_region(text: str) -> Tuple[Optional[int], Region]:
    """``NAME=x,y,w,h`` (every input) or ``N:NAME=x,y,w,h`` (input N, counting from 0)."""
    where, sep, rest = text.rpartition("=")
    if not sep:
        raise UsageError(f"--roi {text!r}: expected NAME=x,y,w,h (or N:NAME=x,y,w,h for input N)")
    index = None
    n, colon, name = where.partition(":")
    if colon and n.strip().isdigit():
        index, where = int(n), name
    name = where.strip()
    if not name:
        raise UsageError(f"--roi {text!r}: the region needs a name")
    try:
        box = tuple(float(v) for v in rest.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or min(box) < 0 or box[2] <= 0 or box[3] <= 0:
        raise UsageError(f"--roi {text!r}: expected four numbers x,y,w,h (w and h above 0)")
    return index, Region(name, box)


def load_regions_file(path: str) -> List[Tuple[Optional[int], Region]]:
    """A JSON or YAML file of regions: ``{"regions": {"NAME": [x, y, w, h]}}`` for every input,
    or per input ``{"inputs": {"0": {"NAME": [x, y, w, h]}}}`` (both may be given)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--regions {path}: no such file")
    text = p.read_text()
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise UsageError(f"--regions {path}: reading YAML needs PyYAML (pip install pyyaml); "
                                 "or write the regions as JSON") from None

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 - any parse error is the same user error
        raise UsageError(f"--regions {path}: not valid {p.suffix.lstrip('.').upper() or 'JSON'} ({e})".splitlines()[0])
    if not isinstance(data, dict) or not set(data) <= {"regions", "inputs"}:
        raise UsageError(f"--regions {path}: expected {{\"regions\": {{NAME: [x, y, w, h]}}}} and/or "
                         "{\"inputs\": {\"0\": {NAME: [x, y, w, h]}}}")
    out = []
    groups = [(None, data.get("regions") or {})] + [(k, v) for k, v in (data.get("inputs") or {}).items()]
    for key, regions in groups:
        if key is not None and not str(key).isdigit():
            raise UsageError(f"--regions {path}: input {key!r} is not a number (0 for the first --input)")
        if not isinstance(regions, dict):
            raise UsageError(f"--regions {path}: the regions of {key or 'every input'} are not NAME: [x, y, w, h]")
        for name, box in regions.items():
            if not isinstance(box, (list, tuple)):
                raise UsageError(f"--regions {path}: region {name!r} is not [x, y, w, h]")
            out.append(parse_region(f"{'' if key is None else f'{key}:'}{name}={','.join(str(v) for v in box)}"))
    return out


def regions_per_input(specs: Sequence[Tuple[Optional[int], Region]], inputs: int) -> List[List[Region]]:
    """Each input's regions (those named for every input first); one-line errors for an input
    number that is not there and a name used twice on one input."""
    per: List[List[Region]] = [[] for _ in range(inputs)]
    for index, region in specs:
        if index is not None and index >= inputs:
            raise UsageError(f"--roi {index}:{region.name}: there are only {inputs} input(s) (numbered from 0)")
        for i in range(inputs) if index is None else [index]:
            if any(r.name == region.name for r in per[i]):
                raise UsageError(f"--roi: region {region.name!r} is named twice on input {i}")
            per[i].append(region)
    return per


def square_around(box: Sequence[float], context: float = CONTEXT) -> Box:
    """The square crop of a person's box (x, y, w, h): centred on it, ``context`` times its longer side."""
    x, y, w, h = box
    side = max(2, int(round(max(w, h) * context)))
    cx, cy = x + w / 2.0, y + h / 2.0
    return int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side, side


def cut(frame: np.ndarray, box: Box) -> np.ndarray:
    """``frame[y:y+h, x:x+w]``, the part outside the frame black (a person at the edge stays centred)."""
    x, y, w, h = (int(v) for v in box)
    H, W = frame.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x0 == x and y0 == y and x1 == x + w and y1 == y + h:
        return frame[y:y + h, x:x + w]
    out = np.zeros((h, w) + frame.shape[2:], frame.dtype)
    if x1 > x0 and y1 > y0:
        out[y0 - y:y1 - y, x0 - x:x1 - x] = frame[y0:y1, x0:x1]
    return out


def person_crop(frame: np.ndarray, box: Sequence[float], context: float = CONTEXT) -> np.ndarray:
    """The square crop of one person's box."""
    return cut(frame, square_around(box, context))


def union(boxes: Sequence[Sequence[float]]) -> Tuple[float, float, float, float]:
    """The smallest box (x, y, w, h) holding every box."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    x0, y0 = b[:, 0].min(), b[:, 1].min()
    return x0, y0, (b[:, 0] + b[:, 2]).max() - x0, (b[:, 1] + b[:, 3]).max() - y0


def tube(boxes: Sequence[Sequence[float]], context: float = CONTEXT) -> Box:
    """One clip's crop of a person: the square around the union of their boxes over the clip's
    frames (training and the camera both cut with this)."""
    return square_around(union(boxes), context)


def region_row(name: str, box: Box) -> Dict:
    return {"region": name, "box": [int(v) for v in box]}
