"""Start the daemon on first use, from whichever git or pip process needs it first.

Many tools run at once (``pip install`` with several indexes, ``git fetch --all``, a build
spawning dozens of git calls), so starting must be race-free: every starter takes one exclusive
``flock`` beside the socket, looks again, and only the first one through finds nothing and
spawns the daemon; the others find it answering. The kernel drops a ``flock`` when its holder
dies, so a crashed starter cannot wedge the next one.

Standard library only: this runs in every git and pip process.
"""

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence, Union

from . import filelock, paths
from .client import Client

LOCK_SUFFIX = ".lock"
LOG_NAME = "autostart.log"

# Daemons we started stay referenced: a collected Popen of a live child warns ResourceWarning,
# and this child is meant to outlive us.
_started: List[subprocess.Popen] = []


def daemon_command() -> List[str]:
    """The command that runs the daemon in the foreground, with the Python running us."""
    # Its stderr is autostart.log, kept for what goes wrong before logging starts; the log
    # lines proper go to daemon.log alone, not twice.
    return [sys.executable, "-m", "credhelper", "daemon", "--log-file-only"]


def ensure_daemon(socket_path: Union[str, Path], timeout: float = 5.0,
                  command: Optional[Sequence[str]] = None) -> bool:
    """Make a daemon answer on ``socket_path``, starting one if none does; True when one answers.

    Whether git and pip may start one (``CREDHELPER_NO_AUTOSTART``) is decided before this is
    called (``frontends.common.starter``); ``command`` replaces ``daemon_command()`` (tests).
    """
    socket_path = Path(socket_path)
    if _answers(socket_path):
        return True
    deadline = time.monotonic() + timeout
    fd = filelock.open_beside(socket_path, LOCK_SUFFIX)
    try:
        # a wedged starter must not hang git: give up at the deadline
        if not filelock.lock_until(fd, deadline):
            return _answers(socket_path)
        try:
            # Whoever held the lock before us may have started the daemon already.
            if _answers(socket_path):
                return True
            return _wait_until_ready(socket_path, _spawn(socket_path, command), deadline)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _answers(socket_path: Path) -> bool:
    return Client(socket_path, timeout=2.0).ping()


def _spawn(socket_path: Path, command: Optional[Sequence[str]]) -> Optional[subprocess.Popen]:
    """Start the daemon detached from us: own session, no pipes back to git or pip.

    An inherited stdout would make git wait for the daemon to exit before it reads our answer;
    the daemon's early output (a traceback before its logging starts) goes to the state dir.
    """
    env = paths.tool_environment(dict(os.environ))
    env["CREDHELPER_SOCKET"] = str(socket_path)  # the daemon must bind where we will look
    try:
        argv = list(command) if command else daemon_command()
        state = paths.ensure_private_dir(paths.state_dir())
        log_fd = os.open(state / LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
    try:
        proc = subprocess.Popen(
            argv, env=env, cwd="/", stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd,
            start_new_session=True, close_fds=True,
        )
        _started.append(proc)
        return proc
    except OSError:
        return None
    finally:
        os.close(log_fd)


def _wait_until_ready(socket_path: Path, proc: Optional[subprocess.Popen], deadline: float) -> bool:
    """Poll until the new daemon answers; stop early if it has already exited."""
    if proc is None:
        return False
    ready = filelock.retry_until(lambda: _answers(socket_path), deadline,
                                 give_up=lambda: proc.poll() is not None)
    return ready or _answers(socket_path)
