"""Typed errors. Library code raises these; only the CLI turns them into a message and an exit code.

Each message is one line that says what is wrong and, where there is one, what to do about it.
"""


def first_line(e: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type where the message is empty), for one-line errors."""
    lines = str(e).strip().splitlines()
    return (lines[0] if lines else type(e).__name__)[:limit]


class FtsError(Exception):
    """Base class: an error a user can act on. The CLI prints `error: <message>` and exits 1."""

    exit_code = 1


class UsageError(FtsError):
    """A flag outside its allowed range (the message names the range): bad usage, exit status 2."""

    exit_code = 2


class VideoError(FtsError):
    """A video that cannot be decoded: missing, empty, not a video, truncated."""


class DatasetError(FtsError):
    """A dataset layout that is missing or malformed (split files, class folders)."""


class CheckpointError(FtsError):
    """A checkpoint or bundle that is missing, corrupt, or for another architecture."""


class ExportError(FtsError):
    """ONNX export, simplification, parity or quantization failed its check."""


class EngineError(FtsError):
    """A TensorRT engine that cannot be built or used here (another TensorRT, another GPU)."""


class TensorRTUnavailable(FtsError):
    """The engine step needs TensorRT on the target device; everything before it was done."""

    exit_code = 3


class SourceError(FtsError):
    """A frame source that cannot be opened or has stopped answering."""


INTERRUPTED = "interrupted; finished work is kept, run the same command again to resume"


def exit_status(e: BaseException, interrupted: str = INTERRUPTED) -> int:
    """End a command on ``e``: print one line to stderr and return the exit status. Every entry
    point (`fts-edge`, the train/ scripts, apps/, research/) ends through here.

    FtsError: its message and its own status (1, usage 2, TensorRT missing 3). Ctrl-C: 130, with
    ``interrupted``. Bad values and missing files: 2. Other OS errors (a full disk): 1. Anything
    else is a bug: one line and how to see the traceback (FTS_EDGE_DEBUG=1 re-raises), status 2.
    """
    import os
    import sys

    if isinstance(e, FtsError):
        msg, code = f"error: {e}", e.exit_code
    elif isinstance(e, KeyboardInterrupt):
        msg, code = interrupted, 130
    elif isinstance(e, (ValueError, FileNotFoundError, PermissionError, IsADirectoryError)):
        msg, code = f"error: {first_line(e, 300)}", 2
    elif isinstance(e, OSError):
        msg, code = f"error: {e.filename or ''}: {e.strerror or first_line(e)}", 1
    else:
        if os.environ.get("FTS_EDGE_DEBUG"):
            raise e
        msg, code = f"error: internal {type(e).__name__}: {first_line(e)} (set FTS_EDGE_DEBUG=1 for the traceback)", 2
    print(msg, file=sys.stderr)
    return code


def guarded(fn, *args, interrupted: str = INTERRUPTED, **kw) -> int:
    """Run a command's body, ``fn(*args, **kw)``, and return its exit status (0 for None)."""
    try:
        return int(fn(*args, **kw) or 0)
    except Exception as e:
        return exit_status(e, interrupted)
    except KeyboardInterrupt as e:
        return exit_status(e, interrupted)
