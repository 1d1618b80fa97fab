"""The accept loop's fast path, decision by decision, on real socket pairs.

A real accept loop on a thread named ``accept-loop``; the handlers record which thread answered:
the ``fast`` handler on the loop itself, or ``handler`` on a worker. Requests are read by the
loop, never by a worker, so silent and trickling clients hold no worker.
"""

import json
import os
import socket
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from credhelper import protocol
from credhelper.logs import AuditLog
from credhelper.listener import Peer, SocketServer
from harness import wait_for

LOOP = "accept-loop"
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
def server(tmp_path) -> Iterator[Tuple[SocketServer, Recorder, Path]]:
    """A server whose accept loop runs on a thread named ``accept-loop``."""
    recorder = Recorder()
    path = tmp_path / "s"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    audit = AuditLog(tmp_path / "audit.log")
    srv = SocketServer(listener, recorder.slow, audit, workers=4, read_timeout=2.0,
                       fast=recorder.fast)
    loop = threading.Thread(target=srv.serve_forever, name=LOOP)
    loop.start()
    yield srv, recorder, path
    srv.shutdown()
    loop.join(10)
    assert not loop.is_alive()
    audit.close()


def connect(path: Path) -> socket.socket:
    """A client connection; it times out instead of hanging a broken test."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(10)
    client.connect(str(path))
    return client


def reply_of(client: socket.socket) -> Dict[str, Any]:
    data = b""
    while True:
        chunk = client.recv(65536)
        if not chunk:
            break
        data += chunk
    client.close()
    return json.loads(data)


def test_a_complete_request_is_answered_on_the_accept_loop(server) -> None:
    srv, rec, path = server
    client = connect(path)
    client.sendall(GET)
    # answered on the loop's own thread: nothing ran on a worker
    assert reply_of(client) == {"ok": True, "by": "fast"}
    assert rec.fast_calls == [("get", LOOP)] and rec.slow_calls == []


def test_a_request_split_across_sends_is_read_by_the_loop_not_a_worker(server) -> None:
    srv, rec, path = server
    client = connect(path)
    half = len(GET) // 2
    client.sendall(GET[:half])
    assert wait_for(lambda: len(srv._reading) == 1)
    client.sendall(GET[half:])
    assert reply_of(client)["by"] == "fast"
    assert rec.fast_calls == [("get", LOOP)] and rec.slow_calls == []


def test_a_request_the_fast_handler_declines_goes_to_the_pool(server) -> None:
    srv, rec, path = server
    rec.fast_answers = False  # the daemon's answer for a cold or refreshing slot
    client = connect(path)
    client.sendall(GET)
    assert reply_of(client)["by"] == "pool"
    assert [op for op, _ in rec.fast_calls] == ["get"] and [op for op, _ in rec.slow_calls] == ["get"]
    assert rec.slow_calls[0][1] != LOOP


@pytest.mark.parametrize("data", [b"hello\n", b'{"v": 1, "op": "rm"}\n', b"{" * 70000 + b"\n",
                                  b'{"v": 1, "op": ["get"]}\n', b"", b"[" * 5000 + b"]" * 5000])
def test_bad_requests_get_an_error_reply(server, data: bytes) -> None:
    srv, rec, path = server
    client = connect(path)
    try:
        client.sendall(data)
        client.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # refused already: the reply is still there to read
    reply = reply_of(client)
    assert reply["ok"] is False and reply["code"] == "bad_request"
    assert rec.fast_calls == [] and rec.slow_calls == []


def test_a_foreign_uid_is_refused_before_the_fast_handler_runs(server, tmp_path) -> None:
    srv, rec, path = server
    srv._uid = os.getuid() + 1  # the client is us: make us the stranger
    client = connect(path)
    client.sendall(GET)
    reply = reply_of(client)
    assert reply["ok"] is False and reply["code"] == "forbidden"
    assert rec.fast_calls == [] and rec.slow_calls == []
    records = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert [r["event"] for r in records] == ["refused"]


def test_silent_and_trickling_clients_hold_no_worker(server) -> None:
    srv, rec, path = server
    rec.fast_answers = False  # every answer must come from a worker, of which there are 4
    silent = [connect(path) for _ in range(8)]
    trickling = [connect(path) for _ in range(8)]
    for client in trickling:
        client.sendall(b'{"v": 1, ')
    assert wait_for(lambda: len(srv._reading) == 16)
    prompt = connect(path)
    prompt.sendall(GET)
    assert reply_of(prompt)["by"] == "pool"
    # the whole request has a deadline (2 s here), however often bytes arrive
    for client in trickling:
        client.sendall(b" ")
    late = [reply_of(client) for client in silent + trickling]
    assert {r["code"] for r in late} == {"bad_request"}
    assert all("in time" in r["message"] for r in late)
    assert srv._reading == {}


def test_refusals_are_all_audited_but_logged_once_a_minute(server, tmp_path, caplog) -> None:
    srv, rec, path = server
    srv._uid = os.getuid() + 1
    caplog.set_level("WARNING", logger="credhelper.listener")
    for _ in range(20):
        client = connect(path)
        client.sendall(GET)
        assert reply_of(client)["code"] == "forbidden"
    records = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert [r["event"] for r in records] == ["refused"] * 20
    assert len([r for r in caplog.records if "refused a connection" in r.getMessage()]) == 1
