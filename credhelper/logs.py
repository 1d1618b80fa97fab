"""The daemon log and the audit log; both pass through a filter that blanks anything token-shaped.

Nothing here should ever see a token, but a redaction filter is cheap insurance against a future
``log.debug(result)`` slipping through review.
"""

import json
import logging
import logging.handlers
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

# Caps on what the logs keep: the current file and this many older ones, each up to the size.
DAEMON_LOG_BYTES = 5 * 1024 * 1024
DAEMON_LOG_KEEP = 2
AUDIT_LOG_BYTES = 10 * 1024 * 1024  # an audit line is ~200 bytes: some 50,000 requests
AUDIT_LOG_KEEP = 1

# JWTs (three base64url parts, the first starting with '{"' encoded) and long opaque secrets.
_SECRET_SHAPES = re.compile(
    r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"
    r"|(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{120,}={0,2}"
)


def redact(text: str) -> str:
    """Replace token-shaped substrings with a marker."""
    return _SECRET_SHAPES.sub("[redacted]", text)


class RedactingFormatter(logging.Formatter):
    """A formatter whose output never carries a token-shaped string."""

    def format(self, record: logging.LogRecord) -> str:
        """Format, then redact the whole line (message, args and traceback alike)."""
        return redact(super().format(record))


def open_private(path: Path) -> Any:
    """Open ``path`` for appending with mode 0600, line buffered."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "a", buffering=1, encoding="utf-8")


class PrivateRotatingHandler(logging.handlers.RotatingFileHandler):
    """A size-capped log whose files are born 0600 (the state directory's rule)."""

    def _open(self) -> Any:
        return open_private(Path(self.baseFilename))


def setup_logging(state_dir: Path, foreground: bool, level: int = logging.INFO,
                  max_bytes: int = DAEMON_LOG_BYTES) -> None:
    """Send the ``credhelper`` logger to ``state_dir/daemon.log`` and, in the foreground, stderr."""
    logger = logging.getLogger("credhelper")
    logger.setLevel(level)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    formatter = RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: List[logging.Handler] = [PrivateRotatingHandler(
        state_dir / "daemon.log", maxBytes=max_bytes, backupCount=DAEMON_LOG_KEEP,
        encoding="utf-8")]
    if foreground:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)


class AuditLog:
    """One JSON line per answered request: who asked, for what, and the outcome; never a token.

    It is written on the hot path, so each line is one ``os.write`` on an ``O_APPEND`` descriptor,
    with no Python file buffer. Only string values are run through ``redact`` (the numbers and
    keys are ours), which costs a fraction of scanning the whole line.

    At ``max_bytes`` the file becomes ``audit.log.1`` (the one before it goes) and a new one
    starts. One lock covers each append, the size count and the swap: without it, lines racing a
    rotation piled into ``audit.log.1`` and the size count went stale (the cap overshot 5x under
    eight writers). An append is a short write to the page cache, so the lock costs next to
    nothing. The new file is ``dup2``-ed onto the same descriptor number, so no descriptor is
    ever closed under a writer (a closed number can be reused by another file).
    """

    def __init__(self, path: Optional[Path], max_bytes: int = AUDIT_LOG_BYTES) -> None:
        self._path = path
        self._max = max_bytes
        self._fd: Optional[int] = None
        self._lock = threading.Lock()
        self._size = 0
        if path is not None:
            self._fd = self._open(path)
            self._size = os.fstat(self._fd).st_size

    @staticmethod
    def _open(path: Path) -> int:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o600)
        return fd

    def write(self, **fields: Any) -> None:
        """Append one record; failures to write are logged, never raised at a client."""
        fd = self._fd
        if fd is None:
            return
        record: Dict[str, Any] = {"time": round(time.time(), 3)}
        for key, value in fields.items():
            record[key] = redact(value) if isinstance(value, str) else value
        data = (_dumps(record) + "\n").encode("utf-8", "backslashreplace")
        with self._lock:
            fd = self._fd
            if fd is None:  # closed while this line was built
                return
            try:
                self._size += os.write(fd, data)
            except OSError as exc:
                logging.getLogger("credhelper.audit").warning("cannot write the audit log: %s", exc)
            if self._size >= self._max:
                self._rotate()

    def _rotate(self) -> None:
        """Swap in a new file; the caller holds ``_lock``."""
        try:
            if self._path is None or self._fd is None:
                return
            path = self._path
            os.replace(path, f"{path}.1")
            fresh = self._open(path)
            try:
                os.dup2(fresh, self._fd, inheritable=False)
            finally:
                os.close(fresh)
            self._size = 0
        except OSError as exc:
            self._size = 0  # try again after another max_bytes, not on every line
            logging.getLogger("credhelper.audit").warning("cannot rotate the audit log: %s", exc)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


# One encoder for every line: json.dumps with any keyword argument builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"))
_LENIENT = json.JSONEncoder(separators=(",", ":"), default=str)


def _dumps(record: Dict[str, Any]) -> str:
    try:
        return _ENCODER.encode(record)
    except TypeError:  # a stray non-JSON value (a Path) becomes text, and is then redacted too
        return redact(_LENIENT.encode(record))
