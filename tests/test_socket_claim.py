"""One daemon per socket: ``claim_socket_path`` (an flock beside the socket, held while serving)
lets only its holder look at, unlink and bind the socket, so daemons started at once cannot both
bind it or unlink each other's. Real files, real sockets, real flocks in a temporary directory.
"""

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from credhelper.errors import ConfigError
from credhelper.listener import SERVING_SUFFIX, bind_unix, claim_socket_path


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "d.sock"


def test_the_claim_is_a_private_file_beside_the_socket_and_can_be_taken_again(path: Path) -> None:
    fd = claim_socket_path(path)
    lock = path.with_name(path.name + SERVING_SUFFIX)
    assert oct(lock.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    os.close(fd)
    os.close(claim_socket_path(path, wait=0))  # free again once closed


def test_a_second_claim_gives_up_at_once_when_the_holder_answers(path: Path) -> None:
    fd = claim_socket_path(path)
    sock = bind_unix(path)
    try:
        started = time.monotonic()
        with pytest.raises(ConfigError, match="already listens on"):
            claim_socket_path(path, wait=30)
        assert time.monotonic() - started < 5
    finally:
        sock.close()
        os.close(fd)


def test_a_second_claim_waits_for_a_holder_that_is_still_stopping(path: Path) -> None:
    fd = claim_socket_path(path)
    threading.Timer(0.3, os.close, [fd]).start()  # the old daemon finishes saving, then exits
    started = time.monotonic()
    second = claim_socket_path(path, wait=10)
    assert 0.2 < time.monotonic() - started < 5
    os.close(second)


def test_a_holder_that_neither_answers_nor_lets_go_is_named_after_the_wait(path: Path) -> None:
    fd = claim_socket_path(path)
    try:
        with pytest.raises(ConfigError, match="already holds .* and does not answer"):
            claim_socket_path(path, wait=0.2)
    finally:
        os.close(fd)


def test_only_the_holder_replaces_a_stale_socket(path: Path) -> None:
    path.parent.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(os.fspath(path))  # bound, never listening, then gone: what a killed daemon leaves
    stale.close()
    fd = claim_socket_path(path)
    sock = bind_unix(path)  # the holder unlinks the stale socket and binds anew
    try:
        probe = socket.socket(socket.AF_UNIX)
        probe.connect(os.fspath(path))
        probe.close()
    finally:
        sock.close()
        os.close(fd)
