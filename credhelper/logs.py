"""The daemon log and the audit log; both pass through a filter that blanks anything token-shaped.

Nothing here should ever see a token, but a redaction filter is cheap insurance against a future
``log.debug(result)`` slipping through review.
"""

import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

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


def setup_logging(state_dir: Path, foreground: bool, level: int = logging.INFO) -> None:
    """Send the ``credhelper`` logger to ``state_dir/daemon.log`` and, in the foreground, stderr."""
    logger = logging.getLogger("credhelper")
    logger.setLevel(level)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    formatter = RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers = [logging.StreamHandler(open_private(state_dir / "daemon.log"))]
    if foreground:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)


class AuditLog:
    """One JSON line per answered request: who asked, for what, and the outcome; never a token.

    It is written on the hot path, so each line is one ``os.write`` on an ``O_APPEND`` descriptor:
    the kernel keeps concurrent appends whole, no lock and no Python file buffer are needed. Only
    string values are run through ``redact`` (the numbers and keys are ours), which costs a
    fraction of scanning the whole line.
    """

    def __init__(self, path: Optional[Path]) -> None:
        self._fd: Optional[int] = None
        if path is not None:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            os.fchmod(self._fd, 0o600)

    def write(self, **fields: Any) -> None:
        """Append one record; failures to write are logged, never raised at a client."""
        fd = self._fd
        if fd is None:
            return
        record: Dict[str, Any] = {"time": round(time.time(), 3)}
        for key, value in fields.items():
            record[key] = redact(value) if isinstance(value, str) else value
        line = _dumps(record) + "\n"
        try:
            os.write(fd, line.encode("utf-8", "backslashreplace"))
        except OSError as exc:
            logging.getLogger("credhelper.audit").warning("cannot write the audit log: %s", exc)

    def close(self) -> None:
        """Close the file."""
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
