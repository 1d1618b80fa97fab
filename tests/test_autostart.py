"""Autostart: the first of many concurrent git/pip processes starts the daemon, exactly once."""

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from credhelper import autostart
from credhelper.client import Client
from credhelper.errors import ConfigError, DaemonUnavailable

ROOT = Path(__file__).resolve().parents[1]

# Stands in for `credhelper daemon`: counts its starts, takes a moment before binding (so racing
# starters would all see nothing listening), answers ping, exits on stop or after idling.
FAKE_DAEMON = textwrap.dedent("""
    import json, os, socket, time
    path = os.environ["CREDHELPER_SOCKET"]
    with open(os.environ["FAKE_DAEMON_STARTS"], "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(0.3)
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    server.settimeout(60)
    while True:
        try:
            conn, _ = server.accept()
        except socket.timeout:
            break
        with conn:
            request = json.loads(conn.makefile("rb").readline())
            conn.sendall(json.dumps({"ok": True, "op": request["op"]}).encode() + b"\\n")
        if request["op"] == "stop":
            break
    os.unlink(path)
""")

# One git/pip process: a client with the front-ends' starter, asking the daemon something.
CALLER = textwrap.dedent("""
    import functools, json, os, sys
    from credhelper.client import Client
    from credhelper.frontends.common import starter
    start = starter()
    if start is not None:
        start = functools.partial(start, command=json.loads(os.environ["FAKE_DAEMON_COMMAND"]))
    print(Client(sys.argv[1], starter=start).call("ping")["ok"])
""")


@pytest.fixture
def env(tmp_path, monkeypatch):
    """HOME, state and a fake daemon command, all inside tmp_path; kills what was started."""
    starts = tmp_path / "starts"
    script = tmp_path / "fake_daemon.py"
    script.write_text(FAKE_DAEMON)
    values = {
        "HOME": str(tmp_path / "home"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "FAKE_DAEMON_COMMAND": json.dumps([sys.executable, str(script)]),
        "FAKE_DAEMON_STARTS": str(starts),
        "PYTHONPATH": str(ROOT),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    for name in ("CREDHELPER_SOCKET", "CREDHELPER_STATE_DIR", "CREDHELPER_NO_AUTOSTART"):
        monkeypatch.delenv(name, raising=False)
    yield starts
    for pid in _started_pids(starts):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _ensure(path: Path, timeout: float = 5.0) -> bool:
    """``autostart.ensure_daemon`` starting the fake daemon."""
    return autostart.ensure_daemon(path, timeout, command=json.loads(os.environ["FAKE_DAEMON_COMMAND"]))


def _started_pids(starts: Path) -> list:
    return [int(line) for line in starts.read_text().split()] if starts.exists() else []


def _sock(tmp_path: Path) -> Path:
    return tmp_path / "run" / "credhelper" / "d.sock"


def test_ten_concurrent_callers_start_exactly_one_daemon(tmp_path, env):
    caller = tmp_path / "caller.py"
    caller.write_text(CALLER)
    procs = [
        subprocess.Popen([sys.executable, str(caller), str(_sock(tmp_path))],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(10)
    ]
    results = [proc.communicate(timeout=60) + (proc.returncode,) for proc in procs]
    assert [r for r in results if r != ("True\n", "", 0)] == []
    assert len(_started_pids(env)) == 1


def test_a_running_daemon_is_not_started_again(tmp_path, env):
    assert _ensure(_sock(tmp_path), timeout=20) is True
    assert _ensure(_sock(tmp_path), timeout=20) is True
    assert Client(_sock(tmp_path), starter=_ensure).call("ping")["ok"] is True
    assert len(_started_pids(env)) == 1


def test_lock_and_socket_dir_are_private(tmp_path, env):
    assert _ensure(_sock(tmp_path), timeout=20)
    run_dir = _sock(tmp_path).parent
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((run_dir / "d.sock.lock").stat().st_mode) == 0o600


def test_a_loose_socket_dir_is_refused(tmp_path, env):
    run_dir = _sock(tmp_path).parent
    run_dir.mkdir(parents=True, mode=0o755)
    run_dir.chmod(0o755)
    with pytest.raises(ConfigError, match="open to other users"):
        _ensure(_sock(tmp_path), timeout=20)
    assert _started_pids(env) == []


def test_no_autostart_env_disables_it_without_importing_autostart(tmp_path, env, monkeypatch):
    monkeypatch.setenv("CREDHELPER_NO_AUTOSTART", "1")
    caller = tmp_path / "caller.py"
    caller.write_text(CALLER)
    proc = subprocess.run([sys.executable, str(caller), str(_sock(tmp_path))],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "DaemonUnavailable" in proc.stderr
    assert _started_pids(env) == []
    check = subprocess.run(
        [sys.executable, "-c", "import sys; from credhelper.frontends.common import starter; "
         "print(starter(), 'credhelper.autostart' in sys.modules)"],
        capture_output=True, text=True, timeout=60)
    assert check.stdout == "None False\n", check.stderr
    # An explicit `credhelper start` still starts it.
    assert _ensure(_sock(tmp_path), timeout=20) is True
    assert len(_started_pids(env)) == 1


def test_clients_do_not_autostart_unless_asked(tmp_path, env):
    with pytest.raises(DaemonUnavailable):
        Client(_sock(tmp_path)).call("ping")
    assert _started_pids(env) == []


def test_a_daemon_that_is_slow_to_answer_does_not_get_a_twin(tmp_path, env):
    # Something listens but does not answer in time: that is not "nothing listens", start nothing.
    sock_path = _sock(tmp_path)
    sock_path.parent.mkdir(parents=True, mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as busy:
        busy.bind(str(sock_path))
        busy.listen(8)
        with pytest.raises(DaemonUnavailable, match="did not answer"):
            Client(sock_path, timeout=0.2, starter=_ensure).call("ping")
    assert _started_pids(env) == []


def test_a_stale_socket_file_is_replaced(tmp_path, env):
    sock_path = _sock(tmp_path)
    sock_path.parent.mkdir(parents=True, mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock_path))
    stale.close()  # the file stays, nothing listens: connect says ECONNREFUSED
    assert Client(sock_path, starter=_ensure).call("ping")["ok"] is True
    assert len(_started_pids(env)) == 1


def test_a_daemon_that_dies_at_once_is_reported_not_waited_for(tmp_path, env):
    dying = [sys.executable, "-c", "import sys; sys.stderr.write('boom: bad config\\n'); sys.exit(2)"]
    # A generous timeout: returning False at all (rather than the test timing out) is the point.
    assert autostart.ensure_daemon(_sock(tmp_path), timeout=120, command=dying) is False
    log = tmp_path / "state" / "credhelper" / "autostart.log"
    assert "boom: bad config" in log.read_text()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_the_daemon_does_not_hold_the_callers_pipes(tmp_path, env):
    # git reads the helper's stdout to EOF; a daemon inheriting it would hang git until it exits.
    caller = tmp_path / "caller.py"
    caller.write_text(CALLER)
    proc = subprocess.run(
        [sys.executable, str(caller), str(_sock(tmp_path))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60,
    )
    assert (proc.stdout, proc.returncode) == ("True\n", 0)
    [pid] = _started_pids(env)
    os.kill(pid, 0)  # still running after the caller's pipes reached EOF


def test_the_daemon_runs_with_the_python_running_us():
    assert autostart.daemon_command() == [sys.executable, "-m", "credhelper", "daemon",
                                          "--log-file-only"]
