"""Fetching a workload identity assertion: run ``assertion_command`` or read ``assertion_file``.

The command runs without a shell (its arguments are passed as they are, ``;`` and all), in its
own process group so a timeout also ends whatever it started, with stdin closed, a deadline and
a cap on what it may print. The assertion is a bearer credential: it never appears in a message;
stderr excerpts are cut to one line and scrubbed of anything that looks like a token.
"""

import os
import re
import selectors
import signal
import subprocess
import time
from typing import Sequence

from ..errors import AuthFailed

COMMAND_TIMEOUT = 15.0
OUTPUT_LIMIT = 64 * 1024
_STDERR_KEEP = 4096
_EXCERPT_CHARS = 160
# Long runs of token alphabet (JWT segments, base64 secrets) are replaced before we show stderr.
_TOKENISH = re.compile(r"[A-Za-z0-9._~+/=-]{20,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ASSERTION_CHARS = re.compile(r"[\x21-\x7e]+")


def excerpt(stderr: bytes) -> str:
    """The first non-empty stderr line, scrubbed and shortened."""
    for line in stderr.decode("utf-8", "replace").splitlines():
        line = _CONTROL.sub(" ", _TOKENISH.sub("[…]", line)).strip()
        if line:
            return line if len(line) <= _EXCERPT_CHARS else line[:_EXCERPT_CHARS] + "…"
    return "no message on stderr"


def clean_assertion(raw: bytes, origin: str) -> str:
    """The stripped assertion, refused when empty or when it holds whitespace or controls."""
    text = raw.decode("ascii", "replace").strip()
    if not text:
        raise AuthFailed(f"{origin} gave an empty assertion")
    if not _ASSERTION_CHARS.fullmatch(text):
        raise AuthFailed(f"{origin} gave an assertion with whitespace or control characters")
    return text


def _kill(proc: "subprocess.Popen[bytes]") -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def run_assertion_command(argv: Sequence[str], timeout: float = COMMAND_TIMEOUT,
                          limit: int = OUTPUT_LIMIT) -> str:
    """Run ``argv`` (no shell) and return what it printed, stripped; AuthFailed on any failure."""
    name = os.path.basename(argv[0]) if argv else "?"
    origin = f"assertion_command {name}"
    if not argv:
        raise AuthFailed("assertion_command is empty")
    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True, close_fds=True)
    except OSError as exc:
        raise AuthFailed(f"{origin}: cannot run it ({exc.strerror or type(exc).__name__})") \
            from exc
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    failure = ""
    with proc, selectors.DefaultSelector() as sel:
        assert proc.stdout is not None and proc.stderr is not None
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        while sel.get_map() and not failure:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                failure = f"timed out after {timeout:g}s"
                break
            for key, _ in sel.select(remaining):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                elif key.data is out:
                    out += chunk
                    if len(out) > limit:
                        failure = f"printed more than {limit} bytes"
                        break
                elif len(err) < _STDERR_KEEP:
                    err += chunk[:_STDERR_KEEP - len(err)]
        if not failure:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                failure = f"timed out after {timeout:g}s"
        if failure:
            _kill(proc)
            raise AuthFailed(f"{origin} {failure}")
    if proc.returncode != 0:
        raise AuthFailed(f"{origin} exited with {proc.returncode}: {excerpt(bytes(err))}")
    return clean_assertion(bytes(out), origin)


def read_assertion_file(path: str, limit: int = OUTPUT_LIMIT) -> str:
    """Read the assertion file afresh (the platform rotates it); AuthFailed when unusable."""
    origin = f"assertion_file {path}"
    try:
        with open(os.path.expanduser(path), "rb") as f:
            raw = f.read(limit + 1)
    except OSError as exc:
        raise AuthFailed(f"{origin}: {exc.strerror or type(exc).__name__}") from exc
    if len(raw) > limit:
        raise AuthFailed(f"{origin} is larger than {limit} bytes")
    return clean_assertion(raw, origin)
