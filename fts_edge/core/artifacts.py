"""Atomic writes and hashes: nothing half-written survives a crash."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file beside it, fsynced, then renamed: a
    crash leaves the old file or the new one. A failure (a full disk, a folder in the way) is an
    OSError naming ``path``, never the temporary."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(21, "is a folder; name a file", str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise type(e)(e.errno, e.strerror, str(path)) from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; an artifact should read like any file
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise type(e)(e.errno, e.strerror, str(path)) from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def check_output_file(path, flag: str) -> None:
    """Refuse, before any work, an output file that cannot be written: a folder in its place, a
    parent that is a file or not writable."""
    from .errors import UsageError

    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; name a file")
    parent = p.parent if str(p.parent) else Path(".")
    for d in (parent, *parent.parents):
        if d.exists():
            if not d.is_dir():
                raise UsageError(f"{flag} {path}: {d} is a file, not a folder")
            if not os.access(d, os.W_OK | os.X_OK):
                raise UsageError(f"{flag} {path}: {d} is not writable")
            break


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def check_output_folder(path, flag: str) -> None:
    """Refuse, before any work, an output folder that cannot be made or written."""
    from .errors import UsageError

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{flag} {path}: is a file; name a folder")
    for d in (p, *p.parents):
        if d.exists():
            if not d.is_dir():
                raise UsageError(f"{flag} {path}: {d} is a file, not a folder")
            if not os.access(d, os.W_OK | os.X_OK):
                raise UsageError(f"{flag} {path}: {d} is not writable")
            break
