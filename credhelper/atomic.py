"""Replacing a file all at once: temp file beside it, fsync, rename, fsync the directory.

A crash leaves the old file or the new one, never a mix; readers never see a half-written file.
"""

import os
import tempfile
from pathlib import Path
from typing import Optional


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int, prefix: Optional[str] = None) -> None:
    """Replace ``path`` with ``data`` (file mode ``mode`` from its first byte on)."""
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=prefix or f".{path.name}.", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(directory)
