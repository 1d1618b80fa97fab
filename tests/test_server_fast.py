"""The accept loop's fast path, decision by decision, on real socket pairs.

``SocketServer._dispatch`` is what the accept loop runs after ``accept()``; called here on one end
of a socketpair (whose SO_PEERCRED is this process), it shows which path answered a request:
the ``fast`` handler on the calling thread, or ``handler`` on a worker.
"""

import json
import os
import socket
import threading
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from credhelper import protocol
from credhelper.logs import AuditLog
from credhelper.listener import Peer, SocketServer

GET = protocol.encode({"v": 1, "op": "get", "url": "https://h.example/x", "for": "test"})


class Recorder:
    """A fast handler that answers only when told to, and a pool handler that always answers."""

    def __init__(self) -> None:
        self.fast_answers = True
        self.fast_calls: List[Tuple[str, str]] = []
        self.slow_calls: List[Tuple[str, str]] = []

    def fast(self, request: Dict[str, Any], peer: Peer) -> Optional[Dict[str, Any]]:
        self.fast_calls.append((request["op"], threading.current_thread().name))
        return {"ok": True, "by": "fast"} if self.fast_answers else None

    def slow(self, request: Dict[str, Any], peer: Peer) -> Dict[str, Any]:
        self.slow_calls.append((request["op"], threading.current_thread().name))
        return {"ok": True, "by": "pool", "pid": peer.pid}


@pytest.fixture
def server(tmp_path) -> Iterator[Tuple[SocketServer, Recorder]]:
    recorder = Recorder()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # never accepted from here
    audit = AuditLog(tmp_path / "audit.log")
    srv = SocketServer(listener, recorder.slow, audit, workers=4, read_timeout=5.0,
                       fast=recorder.fast)
    yield srv, recorder
    srv._close()
    audit.close()


def pair() -> Tuple[socket.socket, socket.socket]:
    """(daemon end, client end); the client end times out instead of hanging a broken test."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    theirs.settimeout(10)
    return ours, theirs


def reply_of(client: socket.socket) -> Dict[str, Any]:
    data = b""
    while True:
        chunk = client.recv(65536)
        if not chunk:
            break
        data += chunk
    client.close()
    return json.loads(data)


def test_a_complete_request_is_answered_before_dispatch_returns(server) -> None:
    srv, rec = server
    ours, client = pair()
    client.sendall(GET)
    srv._dispatch(ours)
    # the answer is already there and the connection closed: nothing ran on a worker
    assert reply_of(client) == {"ok": True, "by": "fast"}
    assert rec.fast_calls == [("get", threading.current_thread().name)] and rec.slow_calls == []


def test_a_silent_client_is_handed_off_without_waiting(server) -> None:
    srv, rec = server
    ours, client = pair()
    srv._dispatch(ours)  # returns at once: a blocking read here would hang the test
    assert rec.fast_calls == []
    client.sendall(GET)
    client.shutdown(socket.SHUT_WR)
    assert reply_of(client)["by"] == "pool"
    assert rec.slow_calls and rec.slow_calls[0][1] != threading.current_thread().name


def test_a_request_split_across_two_sends_is_still_answered(server) -> None:
    srv, rec = server
    ours, client = pair()
    half = len(GET) // 2
    client.sendall(GET[:half])
    srv._dispatch(ours)  # sees half a line: hands it, with the half, to a worker
    client.sendall(GET[half:])
    assert reply_of(client)["by"] == "pool"
    assert rec.fast_calls == [] and [op for op, _ in rec.slow_calls] == ["get"]


def test_a_request_the_fast_handler_declines_goes_to_the_pool(server) -> None:
    srv, rec = server
    rec.fast_answers = False  # the daemon's answer for a cold or refreshing slot
    ours, client = pair()
    client.sendall(GET)
    srv._dispatch(ours)
    assert reply_of(client)["by"] == "pool"
    assert [op for op, _ in rec.fast_calls] == ["get"] and [op for op, _ in rec.slow_calls] == ["get"]


@pytest.mark.parametrize("data", [b"hello\n", b'{"v": 1, "op": "rm"}\n', b"{" * 70000 + b"\n"])
def test_bad_requests_get_the_pools_error_reply(server, data: bytes) -> None:
    srv, rec = server
    ours, client = pair()
    client.sendall(data[:60000])  # what fits in the buffer; the rest follows on the worker
    srv._dispatch(ours)
    try:
        client.sendall(data[60000:])
        client.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # refused already: the reply is still there to read
    reply = reply_of(client)
    assert reply["ok"] is False and reply["code"] == "bad_request"
    assert rec.fast_calls == [] and rec.slow_calls == []


def test_a_foreign_uid_is_refused_before_the_fast_handler_runs(server, tmp_path) -> None:
    srv, rec = server
    srv._uid = os.getuid() + 1  # the socketpair's peer is us: make us the stranger
    ours, client = pair()
    client.sendall(GET)
    srv._dispatch(ours)
    reply = reply_of(client)
    assert reply["ok"] is False and reply["code"] == "forbidden"
    assert rec.fast_calls == [] and rec.slow_calls == []
    records = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert [r["event"] for r in records] == ["refused"]


def test_the_accept_loop_waits_for_a_late_request_without_blocking(tmp_path) -> None:
    recorder = Recorder()
    path = tmp_path / "s"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    srv = SocketServer(listener, recorder.slow, AuditLog(None), workers=2, fast=recorder.fast)
    loop = threading.Thread(target=srv.serve_forever)
    loop.start()
    try:
        late = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        late.settimeout(10)
        late.connect(str(path))  # accepted with nothing to read: watched, not read on a thread
        prompt = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        prompt.settimeout(10)
        prompt.connect(str(path))
        prompt.sendall(GET)
        assert reply_of(prompt)["by"] == "fast"  # the silent one held nothing up
        late.sendall(GET)
        late.shutdown(socket.SHUT_WR)
        assert reply_of(late)["ok"] is True
    finally:
        srv.shutdown()
        loop.join(10)
    assert not loop.is_alive()
