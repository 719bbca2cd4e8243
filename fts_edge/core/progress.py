"""Progress of long work (decoding, flow, training, calibration, benchmarks), on stderr.

On a terminal: a tqdm bar. Elsewhere (a log, a service, a pipe): a line when the work starts, one
every ``FTS_EDGE_PROGRESS_EVERY`` seconds (default 30) with the count, the rate and the time left,
and one when it ends, so a run that takes an hour is never silent. FTS_EDGE_PROGRESS=0 turns both
off (CI); FTS_EDGE_PROGRESS=1 forces the bar.
"""
import os
import sys
import time


def progress(iterable=None, **kw):
    env = os.environ.get("FTS_EDGE_PROGRESS")
    if env == "0":
        from tqdm.auto import tqdm

        return tqdm(iterable, disable=True, **kw)
    if env == "1" or (sys.stderr is not None and sys.stderr.isatty()):
        from tqdm.auto import tqdm

        kw.setdefault("dynamic_ncols", True)
        kw.setdefault("leave", False)
        return tqdm(iterable, file=sys.stderr, **kw)
    return LineProgress(iterable, **kw)


class LineProgress:
    """tqdm's interface (iterate, update, set_postfix, close) as occasional plain lines."""

    def __init__(self, iterable=None, desc: str = "", total=None, unit: str = "it", **_):
        self.iterable, self.desc, self.unit = iterable, desc or "working", unit
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.n, self.postfix, self.closed = 0, "", False
        self.every = float(os.environ.get("FTS_EDGE_PROGRESS_EVERY", "30"))
        self.t0 = self.last = time.monotonic()
        self._say(f"{self.desc}: {self.total if self.total is not None else '?'} {_plural(self.unit)} ...")

    def _say(self, line: str) -> None:
        if sys.stderr is not None:
            try:
                print(line, file=sys.stderr, flush=True)
            except (OSError, ValueError):  # a closed log: progress is not worth failing for
                pass

    def _line(self) -> str:
        took = time.monotonic() - self.t0
        rate = self.n / took if took > 0 else 0.0
        of = f"/{self.total}" if self.total else ""
        left = (f", about {(self.total - self.n) / rate:.0f} s left" if self.total and rate > 0 and self.n < self.total
                else "")
        extra = f" ({self.postfix})" if self.postfix else ""
        return f"{self.desc}: {self.n}{of} {_plural(self.unit)} in {took:.0f} s{left}{extra}"

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._say(self._line())

    def set_postfix(self, **kw) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in kw.items())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if time.monotonic() - self.t0 >= 1.0:  # a line for the end of anything that took a while
                self._say(self._line())

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _plural(unit: str) -> str:
    return unit + ("es" if unit.endswith(("s", "sh", "ch", "x")) else "s")
