"""Progress bars for long work (decoding, training, calibration, benchmarks), on stderr.

Shown on a terminal; in logs and CI they are off unless FTS_EDGE_PROGRESS=1. FTS_EDGE_PROGRESS=0
turns them off everywhere.
"""
import os
import sys


def progress(iterable=None, **kw):
    from tqdm.auto import tqdm

    env = os.environ.get("FTS_EDGE_PROGRESS")
    disable = (env == "0") if env in ("0", "1") else not sys.stderr.isatty()
    kw.setdefault("dynamic_ncols", True)
    kw.setdefault("leave", False)
    return tqdm(iterable, disable=disable, file=sys.stderr, **kw)
