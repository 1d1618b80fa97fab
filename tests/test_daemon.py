"""The real daemon on a temp socket: bad clients, bad config, bad cache, and the peer check."""

import json
import os
import shutil
import socket
import subprocess
import sysconfig
import time
import uuid
from pathlib import Path

import pytest

from credhelper import protocol
from credhelper.errors import NoRoute, RequestError
from harness import Workspace, send_raw
from users import as_user, needs_root, user


def raw(ws: Workspace, data: bytes, half_close: bool = True) -> bytes:
    """Send raw bytes to the daemon and return what it answers."""
    return send_raw(str(ws.socket), data, timeout=10, half_close=half_close)


@pytest.fixture
def running(ws: Workspace) -> Workspace:
    ws.default_config()
    ws.start_daemon()
    return ws


GARBAGE = [
    b"", b"\n", b"hello\n", b"\x00\x01\x02\xff\n", b"[]\n", b'{"op": 1}\n', b'{"v": 9, "op": "get"}\n',
    b'{"v": 1, "op": "get"}\n', b'{"v": 1, "op": "get", "url": 42}\n', b'{"v":1,"op":"get","url":""}\n',
    b'{"v": 1, "op": "rm -rf"}\n', b'{"v": 1, "op": "invalidate", "url": "https://x/"}\n',
    b'{"v": 1, "op": "login_wait", "account": "nope", "wait": 1e9}\n', b"{" * 5000 + b"\n",
]


def test_garbage_gets_an_error_and_the_daemon_lives(running: Workspace) -> None:
    for data in GARBAGE:
        answer = raw(running, data)
        if answer:
            reply = json.loads(answer)
            assert reply["ok"] is False and reply["code"] in {"bad_request", "no_route"}, reply
    assert running.client().ping()
    assert running.daemon.poll() is None


def test_oversized_request_is_refused(running: Workspace) -> None:
    big = b'{"v": 1, "op": "get", "url": "https://x/' + b"a" * (protocol.MAX_MESSAGE + 10) + b'"}\n'
    reply = json.loads(raw(running, big))
    assert reply["code"] == "bad_request" and "larger than" in reply["message"]
    assert running.client().ping()


def test_a_silent_client_does_not_block_others(running: Workspace) -> None:
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.connect(str(running.socket))  # connects and says nothing
    try:
        assert running.client().ping()
    finally:
        idle.close()


def test_cold_and_fresh_gets_each_answer_and_audit_once(running: Workspace) -> None:
    url = running.em.git_url("demo.git")
    request = protocol.encode({"v": 1, "op": "get", "url": url, "for": "test"})
    audit = running.state_dir / "audit.log"
    seen = len(audit.read_text().splitlines()) if audit.exists() else 0
    # the first get finds a cold slot (the accept loop hands it to a worker), the rest are fresh
    replies = [json.loads(raw(running, request)) for _ in range(5)]
    assert all(r["ok"] for r in replies) and len({r["token"] for r in replies}) == 1
    records = [json.loads(line) for line in audit.read_text().splitlines()[seen:]]
    assert [(r["event"], r["outcome"], r["tool"]) for r in records] == [("get", "ok", "test")] * 5
    assert replies[0]["token"] not in audit.read_text()


def test_get_answers_routed_urls_only(running: Workspace) -> None:
    client = running.client()
    reply = client.get(running.em.git_url("demo.git"), "test")
    assert reply["username"] == "workspace" and reply["expires_on"] > time.time() + 600
    with pytest.raises(NoRoute):
        client.get("https://evil.example/", "test")
    with pytest.raises(RequestError):
        client.get("https://user:pw@" + running.em.feed_base.split("//", 1)[1] + "/x", "test")


def test_status_shows_slots_but_never_a_token(running: Workspace) -> None:
    token = running.client().get(running.em.git_url("demo.git"))["token"]
    status = running.credhelper("status", "--json").stdout
    assert token not in status
    slots = json.loads(status)["slots"]
    assert slots and slots[0]["state"] == "fresh"
    human = running.credhelper("status").stdout
    assert token not in human and "workspace" in human


def test_broken_config_on_reload_keeps_the_old_one(running: Workspace) -> None:
    url = running.em.git_url("demo.git")
    running.config_path.write_text(running.config_path.read_text() + "\n[accounts.broken]\nflow = 'nope'\n")
    proc = running.credhelper("reload", check=False)
    assert proc.returncode == 2
    assert "config.toml:" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert running.client().get(url)["token"]
    status = json.loads(running.credhelper("status", "--json").stdout)
    assert status["config_error"]


def test_config_change_is_picked_up_by_the_watcher(running: Workspace) -> None:
    extra = "https://127.0.0.5/"
    with pytest.raises(NoRoute):
        running.client().get(extra)
    text = running.config_path.read_text()
    text += f'\n[[routes]]\nurl = "{extra}"\naccount = "workspace"\npreset = "azure-devops"\n'
    running.config_path.write_text(text)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            running.client().get(extra)
            break
        except NoRoute:
            time.sleep(0.1)
    else:
        pytest.fail("the daemon did not pick up the new route")


def test_daemon_refuses_to_start_with_a_bad_config(ws: Workspace) -> None:
    ws.write_config({"w": {"flow": "federated"}}, [])
    proc = ws.credhelper("daemon", check=False, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.startswith("credhelper: ") and "Traceback" not in proc.stderr


def test_corrupt_cache_is_moved_aside_not_fatal(ws: Workspace) -> None:
    ws.default_config()
    ws.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (ws.state_dir / "cache.bin").write_bytes(b"this is not an encrypted cache")
    ws.start_daemon()
    assert ws.client().get(ws.em.git_url("demo.git"))["token"]
    assert list(ws.state_dir.glob("cache.bin.corrupt-*"))
    status = json.loads(ws.credhelper("status", "--json").stdout)
    assert status["cache_problem"]


def test_sigterm_removes_the_socket(running: Workspace) -> None:
    assert running.socket.exists()
    assert running.stop_daemon() == 0
    assert not running.socket.exists()


def test_credhelper_stop_returns_once_the_process_has_ended(ws: Workspace) -> None:
    tmp = ws.root / "tmp"
    tmp.mkdir()
    ws.env["TMPDIR"] = str(tmp)  # where the daemon writes its combined CA bundle
    ws.default_config()
    ws.start_daemon()
    assert ws.client().get(ws.em.git_url("demo.git"))["token"]  # a slot, its threads
    assert list(tmp.iterdir()), "no CA bundle was written: the cleanup below proves nothing"
    assert "daemon stopped" in ws.credhelper("stop").stdout
    # not "the socket is gone": the process itself has exited (no teardown still running)
    assert ws.daemon is not None and ws.daemon.poll() == 0
    assert not ws.socket.exists()
    # the shortened exit still ran the exit handlers
    assert list(tmp.iterdir()) == []


def test_socket_and_state_are_private(running: Workspace) -> None:
    assert os.stat(running.socket).st_mode & 0o777 == 0o600
    assert os.stat(running.socket.parent).st_mode & 0o777 == 0o700
    assert os.stat(running.state_dir).st_mode & 0o777 == 0o700
    for path in running.state_dir.iterdir():
        assert os.stat(path).st_mode & 0o077 == 0, path


def test_socket_path_too_long_is_one_clear_line(ws: Workspace) -> None:
    ws.default_config()
    ws.env["CREDHELPER_SOCKET"] = str(ws.root / ("d" * 120) / "daemon.sock")
    proc = ws.credhelper("daemon", check=False, timeout=30)
    assert proc.returncode == 2 and "CREDHELPER_SOCKET" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_looser_socket_directory_is_refused(ws: Workspace) -> None:
    ws.default_config()
    ws.socket.parent.mkdir(mode=0o755)
    os.chmod(ws.socket.parent, 0o755)
    proc = ws.credhelper("daemon", check=False, timeout=30)
    assert proc.returncode == 2 and "chmod 700" in proc.stderr


# -- the peer check, with real users ------------------------------------------------------------

def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


@needs_root
def test_peer_of_another_uid_is_refused_even_when_file_modes_allow(ws: Workspace) -> None:
    owner = user("credhelper-t1")
    stranger = user("credhelper-t2")
    # A world-readable copy of the code, so the test users can run it wherever CI cloned us.
    shared = Path("/tmp") / f"credhelper-peer-{uuid.uuid4().hex[:8]}"
    shared.mkdir(mode=0o755)
    try:
        site = shared / "site"
        shutil.copytree(sysconfig.get_paths()["purelib"], site, symlinks=True)
        shutil.copytree(Path(__file__).resolve().parents[1] / "credhelper", site / "credhelper")
        home = shared / "home"
        (home / "run").mkdir(parents=True)
        config = home / "config.toml"
        config.write_text('[accounts.w]\nflow = "managed_identity"\nclient_id = "mi-app"\n'
                          '[[routes]]\nurl = "https://example.com/"\naccount = "w"\n'
                          'scopes = ["api://x/.default"]\n')
        os.system(f"chmod -R a+rX {shared}")
        os.chown(home, owner.pw_uid, owner.pw_gid)
        os.chown(home / "run", owner.pw_uid, owner.pw_gid)
        os.chmod(home / "run", 0o700)
        sock = home / "run" / "d.sock"
        env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(site),
               "CREDHELPER_CONFIG": str(config), "CREDHELPER_SOCKET": str(sock),
               "CREDHELPER_STATE_DIR": str(home / "state")}
        daemon = as_user(owner, ["/usr/bin/python3", "-m", "credhelper", "daemon"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60  # a cold /usr/bin/python3 on a busy 2-core machine
            while time.monotonic() < deadline and daemon.poll() is None:
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    probe.connect(str(sock))  # listening, not merely bound
                    break
                except OSError:
                    time.sleep(0.05)
                finally:
                    probe.close()
            assert sock.exists(), daemon.stdout.read().decode(errors="replace") if daemon.poll() is not None else "no socket"
            ping = protocol.encode({"v": 1, "op": "ping"})
            # root passes every file permission check, so only SO_PEERCRED can refuse it
            as_root = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            as_root.connect(str(sock))
            as_root.sendall(ping)
            as_root.shutdown(socket.SHUT_WR)
            assert json.loads(_read_all(as_root))["code"] == "forbidden"
            as_root.close()
            # another user: open the socket as root, hand nothing over: connect from its own process
            os.chmod(home / "run", 0o711)
            os.chmod(sock, 0o666)  # make file modes allow it, to prove the peer check alone refuses
            probe = ("import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
                     "s.sendall(b'{\"v\":1,\"op\":\"ping\"}\\n'); s.shutdown(socket.SHUT_WR); "
                     "print(b''.join(iter(lambda: s.recv(4096), b'')).decode())")
            other = as_user(stranger, ["/usr/bin/python3", "-c", probe, str(sock)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={"PATH": "/usr/bin"})
            out, err = other.communicate(timeout=20)
            assert json.loads(out)["code"] == "forbidden", err
            # and the owner itself is served
            own = as_user(owner, ["/usr/bin/python3", "-c", probe, str(sock)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={"PATH": "/usr/bin"})
            out, err = own.communicate(timeout=20)
            assert json.loads(out)["ok"] is True, err
            # no core file, and not dumpable: its /proc entries (mem, environ) belong to root
            limits = (Path("/proc") / str(daemon.pid) / "limits").read_text()
            assert [line.split()[4:6] for line in limits.splitlines()
                    if line.startswith("Max core file size")] == [["0", "0"]]
            assert (Path("/proc") / str(daemon.pid) / "environ").stat().st_uid == 0
            audit = (home / "state" / "audit.log").read_text().splitlines()
            refused = [json.loads(line) for line in audit if '"refused"' in line]
            assert {r["uid"] for r in refused} == {0, stranger.pw_uid}
        finally:
            daemon.terminate()
            daemon.wait(timeout=15)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
