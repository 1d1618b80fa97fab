"""Exclusive ``flock`` files beside the daemon's socket, taken with a deadline.

Two live there: ``<socket>.lock``, held by whoever is starting a daemon (``autostart``), and
``<socket>.serving``, held by the daemon that serves the socket for as long as it does
(``listener.claim_socket_path``). The kernel drops a ``flock`` when its holder dies, so a crash
never wedges the next one. ``retry_until`` is the one wait-with-backoff loop: the lock's, and
autostart's for a new daemon to answer. Standard library only: autostart runs in every git and
pip process.
"""

import fcntl
import os
import time
from pathlib import Path
from typing import Callable, Optional

from . import paths

POLL_START = 0.02
POLL_MAX = 0.25


def open_beside(socket_path: Path, suffix: str) -> int:
    """Open (creating it 0600, in the socket's private directory) the lock file ``<socket><suffix>``."""
    paths.ensure_private_dir(socket_path.parent)
    return os.open(socket_path.with_name(socket_path.name + suffix),
                   os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def retry_until(attempt: Callable[[], bool], deadline: float,
                give_up: Optional[Callable[[], bool]] = None) -> bool:
    """Call ``attempt()`` until it is true, pausing longer each time (20 ms up to 250 ms);
    False at ``deadline``, or once ``give_up()`` says so."""
    delay = POLL_START
    while True:
        if attempt():
            return True
        if time.monotonic() >= deadline or (give_up is not None and give_up()):
            return False
        time.sleep(delay)
        delay = min(delay * 2, POLL_MAX)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def lock_until(fd: int, deadline: float, give_up: Optional[Callable[[], bool]] = None) -> bool:
    """Take the exclusive lock on ``fd``; False at ``deadline``, or once ``give_up()`` says so."""
    return retry_until(lambda: _try_lock(fd), deadline, give_up)
