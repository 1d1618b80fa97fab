"""The real daemon under hostile requests and load: it answers, keeps its owner served, stays quiet.

Issue 11, items 2-4 and 7-10: descriptor exhaustion, loose config files, slow clients and long
sign-in waits, malformed requests, large replies, deep TOML, log caps and core dumps.
"""

import json
import os
import resource
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from credhelper import paths
from credhelper.client import Client
from credhelper.errors import Busy
from harness import BIN, Workspace, wait_for
from signin import device_account
from users import needs_root, user


def raw(ws: Workspace, data: bytes, timeout: float = 10) -> Dict[str, Any]:
    """Send raw bytes, half-close, and parse the one reply."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(ws.socket))
    try:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return json.loads(b"".join(iter(lambda: sock.recv(65536), b"")))
    finally:
        sock.close()


def daemon_log(ws: Workspace) -> str:
    path = ws.state_dir / "daemon.log"
    return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture(scope="module")
def running(module_ws: Workspace) -> Workspace:
    """One daemon with the default config, warm."""
    module_ws.default_config()
    module_ws.start_daemon()
    module_ws.client().get(f"{module_ws.em.feed_base}/x", "test")
    return module_ws


# -- item 7: malformed requests ------------------------------------------------------------------

MALFORMED = [
    b'{"v": 1, "op": ["get"]}\n',
    b'{"v": 1, "op": {"get": 1}}\n',
    b'{"v": 1, "op": "get", "url": "https://h.example/\\ud800"}\n',
    b'{"v": 1, "op": "get", "url": ["https://h.example/"]}\n',
    b'{"v": 1, "op": "get", "url": "https://h.example/", "for": {"a": 1}}\n',
    b'{"v": 1, "op": "login_start", "account": 5}\n',
    b'{"v": 1, "op": "login_wait", "account": ["w"]}\n',
    b'{"v": 1, "op": "login_wait", "wait": "10"}\n',
    b'{"v": 1, "op": "invalidate", "url": "https://h.example/", "token": 7}\n',
    b'{"v": [1], "op": "ping"}\n',
    b'{"v": true, "op": "ping"}\n',
    b'{"v": 1, "op": "ping", "a": ' + b"[" * 1000 + b"]" * 1000 + b"}\n",
    b"[" * 100000,
    b'{"v": 1, "op": "get", "url": "\\udfff\\ud800://x"}\n',
]


def test_malformed_requests_get_bad_request_and_no_traceback(running: Workspace) -> None:
    ws = running
    for data in MALFORMED:
        reply = raw(ws, data)
        assert reply["ok"] is False and reply["code"] == "bad_request", (data[:60], reply)
    assert ws.client().ping()
    assert "Traceback" not in daemon_log(ws) and "internal error" not in daemon_log(ws)


# -- item 8: a large status ----------------------------------------------------------------------

def test_status_with_hundreds_of_routes(ws: Workspace) -> None:
    routes = [{"url": f"{ws.em.feed_base}/org-{i:04d}/project-with-a-long-name/",
               "account": "workspace", "preset": "azure-devops"} for i in range(800)]
    ws.write_config(ws.federated_account(), routes)
    ws.start_daemon(timeout=60)  # 800 routes to check on a machine other test runs share
    proc = ws.credhelper("status", "--json")
    assert len(proc.stdout) > 64 * 1024
    assert len(json.loads(proc.stdout)["routes"]) == 800


# -- items 3 and 9: the config file ----------------------------------------------------------------

def _one_line_refusal(ws: Workspace, needle: str) -> None:
    proc = ws.credhelper("daemon", check=False, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_config_writable_by_others_is_refused_at_start(ws: Workspace) -> None:
    path = ws.default_config()
    path.chmod(0o664)
    _one_line_refusal(ws, f"run: chmod 600 {path}")
    path.chmod(0o600)
    path.parent.chmod(0o777)
    _one_line_refusal(ws, f"run: chmod 700 {path.parent}")


@needs_root
def test_config_owned_by_another_user_is_refused_at_start(ws: Workspace) -> None:
    path = ws.default_config()
    stranger = user("credhelper-t2")
    os.chown(path, stranger.pw_uid, stranger.pw_gid)
    _one_line_refusal(ws, f"belongs to uid {stranger.pw_uid}")


def test_loose_or_deep_config_is_refused_on_reload_and_status_says_why(ws: Workspace) -> None:
    path = ws.default_config()
    ws.start_daemon()
    marker = ws.root / "ran"
    # a loosened file whose new account would run a command of the other user's choosing
    text = path.read_text().replace(str(ws.gp), "/bin/touch").replace(
        '"idp", "token", "--audience", "api://AzureADTokenExchange"', f'"{marker}"')
    path.write_text(text)
    path.chmod(0o666)
    assert wait_for(lambda: ws.client().call("status")["config_error"] is not None)
    status = ws.client().call("status")
    assert f"chmod 600 {path}" in status["config_error"]
    ws.credhelper("reload", check=False)
    ws.client().get(f"{ws.em.feed_base}/other", "test")
    assert not marker.exists()
    # deep nesting: one line, shown in status, no traceback
    path.chmod(0o600)
    path.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    assert wait_for(lambda: "nested too deeply" in (
        ws.client().call("status")["config_error"] or ""))
    proc = ws.credhelper("status")
    assert "nested too deeply" in proc.stdout + proc.stderr
    assert "Traceback" not in daemon_log(ws) and "RecursionError" not in daemon_log(ws)
    ws.default_config()
    ws.credhelper("reload")
    assert ws.client().call("status")["config_error"] is None


def test_deep_config_at_start_is_one_line(ws: Workspace) -> None:
    ws.config_path.parent.mkdir(parents=True, exist_ok=True)
    ws.config_path.write_text("[a]\nb = " + "{c = " * 3000 + "1" + "}" * 3000 + "\n")
    _one_line_refusal(ws, "nested too deeply")


# -- item 4: slow clients and long sign-in waits ---------------------------------------------------

class Tricklers:
    """``count`` connections that each send one byte now and then, reconnecting when cut off."""

    def __init__(self, ws: Workspace, count: int, every: float = 0.5,
                 path: Optional[Path] = None) -> None:
        self.ws, self.every = ws, every
        self.path = path or ws.socket
        self.stop = threading.Event()
        self.cut = 0
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def __enter__(self) -> "Tricklers":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)

    def _run(self) -> None:
        while not self.stop.is_set():
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self.path))
                while not self.stop.wait(self.every):
                    sock.send(b" ")
            except OSError:
                self.cut += 1
            finally:
                sock.close()


def test_trickling_clients_do_not_starve_the_owner(running: Workspace) -> None:
    ws = running
    git_socket = paths.git_cache_socket(ws.socket)
    assert git_socket.exists()
    with Tricklers(ws, 100) as attack, Tricklers(ws, 20, path=git_socket) as git_attack:
        time.sleep(1)  # let them all connect and start trickling
        client = Client(ws.socket, timeout=10)
        assert client.call("status")["ok"]
        assert client.call("invalidate", url=f"{ws.em.feed_base}/x", token="not-held")["ok"]
        ws.credhelper("status", timeout=30)
        # a cold slot: a scope never asked for before, acquired from the emulator now
        ws.write_config(ws.federated_account(), [
            {"url": f"{ws.em.feed_base}/", "account": "workspace", "preset": "azure-devops"},
            {"url": f"{ws.em.feed_base}/cold/", "account": "workspace",
             "scopes": ["api://cold/.default"]}])
        ws.credhelper("reload")
        assert client.get(f"{ws.em.feed_base}/cold/x", "test")["token"]
        # the whole request has a deadline: trickling does not keep a connection forever
        assert wait_for(lambda: attack.cut > 0 and git_attack.cut > 0, 20)
        # and git's own cache client is answered on the git socket meanwhile
        fill = ws.git("credential-cache", f"--socket={git_socket}", "get",
                      input=f"protocol=https\nhost={ws.em.feed_base.split('://')[1]}\n"
                            "path=cold/x\n\n")
        assert "password=" in fill.stdout
    ws.default_config()
    ws.credhelper("reload")


def test_sign_in_waits_cannot_fill_the_workers(ws: Workspace) -> None:
    ws.write_config({"work": device_account(ws)}, [
        {"url": f"{ws.em.feed_base}/", "account": "work", "preset": "azure-devops"}])
    ws.start_daemon()
    client = Client(ws.socket, timeout=30)
    client.call("login_start", account="work")
    outcomes: List[str] = []

    def wait() -> None:
        try:
            client.call("login_wait", account="work", wait=8, timeout=30)
            outcomes.append("waited")
        except Busy:
            outcomes.append("busy")

    threads = [threading.Thread(target=wait) for _ in range(12)]
    for thread in threads:
        thread.start()
    assert wait_for(lambda: outcomes.count("busy") >= 8, 20)
    assert client.call("status")["ok"]  # the owner's commands still answer
    for thread in threads:
        thread.join(30)
    assert outcomes.count("waited") <= 4 and outcomes.count("busy") >= 8
    client.call("login_wait", account="work", wait=0, cancel=True)


# -- item 2: descriptor exhaustion ----------------------------------------------------------------

def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _limits(pid: int, name: str) -> List[str]:
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith(name):
            return line[len(name):].split()[:2]
    raise AssertionError(f"no {name} in /proc/{pid}/limits")


def test_out_of_descriptors_backs_off_logs_once_and_keeps_serving(ws: Workspace) -> None:
    ws.default_config()
    log = open(ws.root / "daemon.stderr", "ab")

    def small_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 96))

    ws.daemon = subprocess.Popen([str(BIN / "credhelper"), "daemon"], env=ws.daemon_env(),
                                 stdout=log, stderr=log, preexec_fn=small_limit)
    assert wait_for(lambda: ws.client().ping(), 30), ws.daemon_output()
    pid = ws.daemon.pid
    assert _limits(pid, "Max open files") == ["96", "96"]  # soft raised to the hard limit
    ws.client().get(f"{ws.em.feed_base}/x", "test")  # warm
    idle = []
    try:
        for _ in range(200):  # more than the daemon has descriptors; the rest wait in the backlog
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.connect(str(ws.socket))
            except BlockingIOError:
                pass  # the backlog is full; this one is still in flight
            idle.append(sock)
        git_socket = str(paths.git_cache_socket(ws.socket))
        for _ in range(50):  # the git socket's loop meets the same shortage
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.connect(git_socket)
            except BlockingIOError:
                pass
            idle.append(sock)
        assert wait_for(lambda: "cannot accept" in daemon_log(ws), 10)
        before, start = _cpu_seconds(pid), time.monotonic()
        time.sleep(2)
        # spinning on accept() burns a whole core; backing off costs next to nothing
        assert _cpu_seconds(pid) - before < 0.5 * (time.monotonic() - start)
        # the owner is served once the idle ones reach their deadline and free descriptors
        reply = Client(ws.socket, timeout=60).get(f"{ws.em.feed_base}/x", "test")
        assert reply["token"]
    finally:
        for sock in idle:
            sock.close()
    assert ws.client().ping()
    lines = [line for line in daemon_log(ws).splitlines()
             if "accept" in line and "open files" in line]
    # once per shortage and socket (a new one starts each time the backlog refills what the
    # 5 s deadline freed), not once per attempt: the spinning loop wrote thousands
    assert 1 <= len(lines) <= 20, len(lines)


# -- item 10: logs capped, no core dumps ------------------------------------------------------------

def test_core_dumps_are_off_in_the_daemon(running: Workspace) -> None:
    assert _limits(running.daemon.pid, "Max core file size") == ["0", "0"]


def test_the_audit_log_rotates_at_its_cap(tmp_path, caplog) -> None:
    from credhelper.logs import AuditLog

    caplog.set_level("WARNING", logger="credhelper.audit")
    # a small cap and eight writers: hundreds of rotations, each racing the other writers
    audit = AuditLog(tmp_path / "audit.log", max_bytes=2_000)
    threads = [threading.Thread(target=lambda: [audit.write(event="get", url="https://h/" + "x" * 80)
                                                for _ in range(1000)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    audit.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.log", "audit.log.1"]
    for name in files:
        path = tmp_path / name
        assert path.stat().st_size < 4_000 and oct(path.stat().st_mode & 0o777) == "0o600"
        assert all(json.loads(line)["event"] == "get" for line in path.read_text().splitlines())
    # no write ever met a descriptor closed under it (or, worse, reused by another file)
    assert [r.getMessage() for r in caplog.records] == []


def test_the_daemon_log_rotates_at_its_cap(tmp_path) -> None:
    import logging

    from credhelper.logs import DAEMON_LOG_KEEP, setup_logging

    root = logging.getLogger("credhelper")
    saved = (root.level, root.propagate, list(root.handlers))
    setup_logging(tmp_path, foreground=False, max_bytes=5_000)
    log = logging.getLogger("credhelper.test")
    try:
        for i in range(1000):
            log.warning("line %d of a chatty day", i)
    finally:  # leave the logger as this process had it (caplog in other tests relies on it)
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        root.setLevel(saved[0])
        root.propagate = saved[1]
        for handler in saved[2]:
            root.addHandler(handler)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["daemon.log"] + [f"daemon.log.{i}" for i in range(1, DAEMON_LOG_KEEP + 1)]
    assert all((tmp_path / name).stat().st_size <= 5_100 for name in files)
    assert all(oct((tmp_path / name).stat().st_mode & 0o777) == "0o600" for name in files)
