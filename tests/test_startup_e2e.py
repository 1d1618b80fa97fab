"""The real daemon started the two ways nobody types: by systemd's socket, and by git itself."""

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator, List

import pytest

from harness import BIN, Workspace

ACTIVATE = shutil.which("systemd-socket-activate")
PASSED_ENV = ("HOME", "PATH", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME",
              "CREDHELPER_SOCKET", "CREDHELPER_HTTP_TIMEOUT", "NPM_CONFIG_USERCONFIG")

pytestmark = pytest.mark.timeout(120)


def daemon_pids(socket_path: Path) -> List[int]:
    """Live `credhelper daemon` processes (Python, not a launcher) for ``socket_path``."""
    wanted = f"CREDHELPER_SOCKET={socket_path}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            exe = os.readlink(entry / "exe")
        except OSError:
            continue
        if "python" in os.path.basename(exe) and b"daemon" in argv and wanted in environ \
                and any(b"credhelper" in a for a in argv) and state != "Z":
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(20)
    yield sock
    sock.close()


@pytest.mark.skipif(ACTIVATE is None, reason="needs systemd-socket-activate")
def test_systemd_socket_activation_runs_the_real_daemon(ws: Workspace, notify: socket.socket) -> None:
    ws.default_config()
    ws.socket.parent.mkdir(mode=0o700)
    env = dict(ws.env, NOTIFY_SOCKET=notify.getsockname())
    flags = [f"-E{name}" for name in PASSED_ENV + ("NOTIFY_SOCKET",)]
    with open(ws.root / "daemon.stderr", "ab") as log:
        activator = subprocess.Popen(
            [ACTIVATE, "-l", str(ws.socket), "--fdname=credhelper", *flags,
             str(BIN / "credhelper"), "daemon"], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 15
        while not ws.socket.exists():  # systemd-socket-activate binds, then waits for a client
            assert activator.poll() is None and time.monotonic() < deadline, ws.daemon_output()
            time.sleep(0.02)
        assert daemon_pids(ws.socket) == []  # nothing runs until someone connects

        reply = ws.client().get(f"{ws.em.feed_base}/git/demo.git", for_="test")
        assert reply["username"] == "workspace" and reply["expires_on"] > time.time()
        assert notify.recv(4096) == b"READY=1"
        assert ws.client().call("ping")["pid"] == activator.pid  # exec'd in place: LISTEN_PID held
        assert "a socket from systemd" in ws.logs()

        activator.send_signal(signal.SIGTERM)
        assert notify.recv(4096) == b"STOPPING=1"
        assert activator.wait(timeout=15) == 0
        assert ws.socket.exists()  # systemd's socket: not ours to unlink
    finally:
        if activator.poll() is None:
            activator.kill()
            activator.wait()


@pytest.fixture
def autostarting(ws: Workspace) -> Iterator[Workspace]:
    """git configured for a path-prefixed route, no daemon, autostart allowed."""
    ws.write_config(ws.federated_account(), [
        {"url": f"{ws.em.feed_base}/git/", "account": "workspace", "preset": "azure-devops"}])
    ws.credhelper("configure", "git")
    del ws.env["CREDHELPER_NO_AUTOSTART"]
    yield ws
    for pid in daemon_pids(ws.socket):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while daemon_pids(ws.socket) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert daemon_pids(ws.socket) == [], "an autostarted daemon did not stop"


def test_ten_concurrent_git_calls_autostart_exactly_one_daemon(autostarting: Workspace) -> None:
    ws = autostarting
    assert ws.git("config", "--global", "--get",
                  f"credential.{ws.em.feed_base}.useHttpPath").stdout.strip() == "true"
    assert not ws.socket.exists() and daemon_pids(ws.socket) == []
    results: List[subprocess.CompletedProcess] = []

    def fill(index: int) -> None:
        request = f"url={ws.em.feed_base}/git/repo{index}.git\n\n"
        results.append(ws.git("credential", "fill", input=request, check=False, timeout=60))

    threads = [threading.Thread(target=fill, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 10
    for result in results:
        assert result.returncode == 0, result.stderr
        # stdout holds the token: keep it out of any assertion message
        fields = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
        assert fields.get("username") == "workspace", sorted(fields)
        assert fields.get("password", "").startswith("ey"), sorted(fields)
    pids = daemon_pids(ws.socket)
    assert len(pids) == 1
    assert ws.client().call("ping")["pid"] == pids[0]
    assert ws.logs().count("ready on") == 1
    assert ws.em.idp.count(client_id="fed-app") >= 1
