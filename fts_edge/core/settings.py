"""Settings objects: one frozen dataclass per command or stage, each field declared once with its
default and its allowed range, checked when the object is made, and passed whole.

    @dataclass(frozen=True)
    class LiveSettings(Settings):
        every: int = setting(5, lo=1, help="classify every N frames")

``Settings.make(**kw)`` drops None values (a flag left unset keeps the field's default, as
timm's create_model drops None kwargs) and refuses a value outside its range in one line that
names the flag (``--every must be at least 1, got 0``): exit status 2.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Optional

from .errors import UsageError


def setting(default: Any = dataclasses.MISSING, *, lo: Optional[float] = None, hi: Optional[float] = None,
            above: Optional[float] = None, flag: Optional[str] = None, help: str = "",
            default_factory: Any = dataclasses.MISSING):
    """A field with its range: ``lo <= value <= hi``, or ``value > above``. ``flag`` names it in
    messages (default: --name-with-dashes).

    Args:
        default, default_factory: the field's default (as dataclasses.field).
        lo, hi: the inclusive range; above: an exclusive lower bound.
        flag: the flag's name in messages.
        help: the flag's help text (the command line's flags read it).

    Returns:
        A dataclasses.field with the range in its metadata.
    """
    meta = {"lo": lo, "hi": hi, "above": above, "flag": flag, "help": help}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag_of(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def check_range(flag: str, value, lo=None, hi=None, above=None) -> None:
    """One line naming the flag and the range where ``value`` is outside it.

    Args:
        flag: the name in the message (--every).
        value: the value (None and booleans pass; NaN never does).
        lo, hi, above: the range, as ``setting`` takes it.

    Raises:
        UsageError (exit status 2).
    """
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, float) and math.isnan(value):
        raise UsageError(f"{flag} must be a number, got {value}")
    if above is not None and not value > above:
        raise UsageError(f"{flag} must be above {above}, got {value}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"at least {lo}" if hi is None else f"at most {hi}" if lo is None else f"from {lo} to {hi}"
        raise UsageError(f"{flag} must be {rng}, got {value}")


class Settings:
    """Mixin for frozen dataclasses whose fields are declared with ``setting``."""

    def __post_init__(self):
        self.check_ranges()

    def check_ranges(self) -> None:
        for f in dataclasses.fields(self):
            m = f.metadata
            if m and any(m.get(k) is not None for k in ("lo", "hi", "above")):
                check_range(flag_of(f), getattr(self, f.name), m.get("lo"), m.get("hi"), m.get("above"))

    @classmethod
    def make(cls, **kw):
        """The settings from keywords (a parsed command line's namespace, say): unknown names are
        ignored, None keeps the default."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in kw.items() if k in names and v is not None})

    def replace(self, **kw):
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)
