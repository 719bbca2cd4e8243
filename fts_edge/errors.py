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
