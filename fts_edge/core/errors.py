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


class Terminated(KeyboardInterrupt):
    """SIGTERM (what systemd, docker and `kill` send), raised where the program is, as Ctrl-C is:
    the command finishes what it must (atomic writes, the camera's outputs) and exits 143."""


def terminate_as_interrupt():
    """While inside, SIGTERM raises Terminated in the main thread (elsewhere: nothing changes)."""
    import contextlib
    import signal
    import threading

    @contextlib.contextmanager
    def installed():
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_sigterm(signum, frame):
            raise Terminated()

        old = signal.signal(signal.SIGTERM, on_sigterm)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, old)

    return installed()


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
        msg, code = (interrupted + " (stopped by SIGTERM)", 143) if isinstance(e, Terminated) else (interrupted, 130)
    elif isinstance(e, OSError):  # bad paths: 2; the machine (a full disk, a lost device): 1
        code = 2 if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)) else 1
        what = e.strerror or first_line(e)
        msg = f"error: {e.filename}: {what}" if e.filename else f"error: {what}"
    elif isinstance(e, ValueError):
        msg, code = f"error: {first_line(e, 300)}", 2
    else:
        if os.environ.get("FTS_EDGE_DEBUG"):
            raise e
        msg, code = f"error: internal {type(e).__name__}: {first_line(e)} (set FTS_EDGE_DEBUG=1 for the traceback)", 2
    print(msg, file=sys.stderr)
    return code


def guarded(fn, *args, interrupted: str = INTERRUPTED, **kw) -> int:
    """Run a command's body, ``fn(*args, **kw)``, and return its exit status (0 for None).
    SIGTERM stops it as Ctrl-C does (exit status 143)."""
    try:
        with terminate_as_interrupt():
            return int(fn(*args, **kw) or 0)
    except Exception as e:
        return exit_status(e, interrupted)
    except KeyboardInterrupt as e:
        return exit_status(e, interrupted)
