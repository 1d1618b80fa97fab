"""Socket activation and sd_notify, against the real systemd-socket-activate and a real socket."""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from credhelper import systemd

ROOT = Path(__file__).resolve().parents[1]
ACTIVATE = shutil.which("systemd-socket-activate") or "/usr/bin/systemd-socket-activate"

# The child answers one connection with what it received from systemd, then exits.
ACTIVATED_CHILD = textwrap.dedent("""
    import fcntl, json, os, socket
    from credhelper import systemd
    listen_pid = os.environ.get("LISTEN_PID")
    socks = systemd.listen_fds()
    conn, _ = socks[0].accept()
    request = conn.recv(1024).decode()
    conn.sendall(json.dumps({
        "count": len(socks),
        "fd": socks[0].fileno(),
        "listen_pid_was_ours": listen_pid == str(os.getpid()),
        "family": socks[0].family.name,
        "type": socks[0].type.name,
        "cloexec": bool(fcntl.fcntl(socks[0].fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC),
        "env_left": sorted(k for k in os.environ if k.startswith("LISTEN_")),
        "request": request,
    }).encode())
    conn.close()
""")

# Puts a listener of the given kind at fd 3 and claims it as systemd would, then reports.
FAKE_ACTIVATION = textwrap.dedent("""
    import os, socket, sys
    from credhelper import systemd
    from credhelper.errors import ConfigError
    kind = sys.argv[1]
    if kind == "tcp":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.listen()
    elif kind == "dgram":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(sys.argv[2])
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(sys.argv[2])
        s.listen()
    os.dup2(s.fileno(), 3, inheritable=True)
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["LISTEN_FDS"] = "1"
    try:
        socks = systemd.listen_fds()
    except ConfigError as exc:
        print("ConfigError:", exc)
    else:
        print("ok", len(socks), socks[0].family.name)
""")


def _child_env() -> dict:
    return {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "")}


def _connect(path: Path, deadline: float) -> socket.socket:
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@pytest.mark.skipif(not os.access(ACTIVATE, os.X_OK), reason="systemd-socket-activate not installed")
def test_socket_activation_hands_the_listener_to_the_daemon(tmp_path):
    sock_path = tmp_path / "d.sock"
    script = tmp_path / "child.py"
    script.write_text(ACTIVATED_CHILD)
    # systemd-socket-activate passes only TERM, PATH, USER, HOME and -E variables to the child.
    proc = subprocess.Popen(
        [ACTIVATE, "-l", str(sock_path), "-E", f"PYTHONPATH={ROOT}", sys.executable, str(script)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        conn = _connect(sock_path, time.monotonic() + 20)
        with conn:
            conn.settimeout(20)
            conn.sendall(b"ping")
            reply = conn.recv(4096)
        assert proc.wait(timeout=20) == 0, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    got = json.loads(reply)
    assert got == {
        "count": 1, "fd": 3, "listen_pid_was_ours": True, "family": "AF_UNIX",
        "type": "SOCK_STREAM", "cloexec": True, "env_left": [], "request": "ping",
    }


def test_fds_meant_for_another_process_are_left_alone(monkeypatch):
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    monkeypatch.setenv("LISTEN_FDS", "1")
    assert systemd.listen_fds() == []
    assert "LISTEN_PID" not in os.environ and "LISTEN_FDS" not in os.environ


def test_no_activation_means_no_sockets(monkeypatch):
    monkeypatch.delenv("LISTEN_PID", raising=False)
    monkeypatch.delenv("LISTEN_FDS", raising=False)
    assert systemd.listen_fds() == []


@pytest.mark.parametrize("kind, expected", [
    ("unix", "ok 1 AF_UNIX"),
    ("tcp", "ConfigError: fd 3 passed by systemd is AF_INET/SOCK_STREAM"),
    ("dgram", "ConfigError: fd 3 passed by systemd is AF_UNIX/SOCK_DGRAM"),
])
def test_only_a_unix_stream_listener_is_accepted(tmp_path, kind, expected):
    script = tmp_path / "fake.py"
    script.write_text(FAKE_ACTIVATION)
    out = subprocess.run(
        [sys.executable, str(script), kind, str(tmp_path / "s.sock")],
        env=_child_env(), capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(expected)


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    yield sock
    sock.close()


def test_ready_reaches_the_notify_socket(notify_socket):
    assert systemd.ready() is True
    assert notify_socket.recv(4096) == b"READY=1"


def test_status_and_stopping_are_single_datagrams(notify_socket):
    assert systemd.status("serving 3 routes\nsigned in") is True
    assert systemd.stopping() is True
    assert notify_socket.recv(4096) == b"STATUS=serving 3 routes signed in"
    assert notify_socket.recv(4096) == b"STOPPING=1"


def test_abstract_namespace_socket(monkeypatch):
    name = f"credhelper-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.ready() is True
        assert sock.recv(4096) == b"READY=1"


@pytest.mark.parametrize("value", [None, "", "relative/path", "vsock:2:1234"])
def test_notify_is_a_no_op_without_a_usable_socket(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    else:
        monkeypatch.setenv("NOTIFY_SOCKET", value)
    assert systemd.ready() is False


def test_notify_to_a_vanished_socket_returns_false(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert systemd.notify("READY=1") is False

