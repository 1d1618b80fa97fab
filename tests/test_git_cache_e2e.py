"""git's credential-cache client on the daemon's git socket: real git 2.39, the real daemon.

``credhelper configure git`` puts, for each routed origin, a reset, ``cache --socket=<the
daemon's git socket>`` and the ``entra`` fallback. These tests drive that set-up with real git
through each hard case: the warm path, a clone, sign-in needed, the daemon down with autostart
on, git's own cache daemon squatting on our socket, an erase after a 401, and a stranger's uid.
Which path answered is read from the audit log: the peer of the git socket is git itself, the
peer of the ``entra`` helper is Python.
"""

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict, List

import pytest

from credhelper import paths
from harness import Workspace, wait_for


def git_socket(ws: Workspace) -> Path:
    return paths.git_cache_socket(ws.socket)


def audit(ws: Workspace) -> List[Dict[str, Any]]:
    path = ws.state_dir / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def python_ran(record: Dict[str, Any]) -> bool:
    return "python" in os.path.basename(str(record.get("exe")))


def fill(ws: Workspace, url: str, check: bool = True) -> subprocess.CompletedProcess:
    return ws.git("credential", "fill", input=f"url={url}\n\n", check=check)


def fields(out: str) -> Dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def git_cache_daemons(socket_path: Path) -> List[int]:
    """Pids of git's own credential-cache--daemon serving ``socket_path``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"credential-cache--daemon" in cmdline and os.fsencode(socket_path) in cmdline:
            found.append(int(entry))
    return found


@pytest.fixture
def configured(ws: Workspace) -> Workspace:
    ws.default_config()
    ws.credhelper("configure", "git")
    return ws


def test_warm_fill_is_answered_by_the_git_socket_without_python(configured: Workspace) -> None:
    ws = configured
    ws.start_daemon()
    url = ws.em.git_url("demo.git")
    first = fields(fill(ws, url).stdout)
    second = fields(fill(ws, url).stdout)
    assert first["username"] == "workspace" and first["password"] == second["password"]
    # git 2.39 does not know password_expiry_utc (2.41 does), so ask its cache client directly
    host = ws.em.feed_base.split("//", 1)[1]
    raw = ws.git("credential-cache", f"--socket={git_socket(ws)}", "get",
                 input=f"protocol=https\nhost={host}\npath=git/demo.git\n").stdout
    assert int(fields(raw)["password_expiry_utc"]) > 0 and fields(raw)["password"] == first["password"]
    gets = [r for r in audit(ws) if r["event"] == "get"]
    assert len(gets) == 3 and all(r["outcome"] == "ok" for r in gets)
    assert not any(python_ran(r) for r in gets), "the entra helper ran: the git socket did not answer"
    assert os.stat(git_socket(ws)).st_mode & 0o777 == 0o600


def test_clone_and_store_through_the_git_socket(configured: Workspace) -> None:
    ws = configured
    ws.start_daemon()
    inode = os.stat(git_socket(ws)).st_ino
    ws.git("clone", "-q", ws.em.git_url("demo.git"), str(ws.root / "clone"))
    assert (ws.root / "clone" / ".git").is_dir()
    # git stored the credential after the clone: our daemon took it (and ignored it), so git
    # started no cache daemon of its own and the socket is still the daemon's
    assert git_cache_daemons(git_socket(ws)) == []
    assert os.stat(git_socket(ws)).st_ino == inode
    gets = [r for r in audit(ws) if r["event"] == "get" and r["outcome"] == "ok"]
    assert gets and not any(python_ran(r) for r in gets)


def test_not_signed_in_says_so_and_git_stops(ws: Workspace) -> None:
    accounts = {"person": {"authority": f"{ws.em.idp_base}/{ws.em.tenant}",
                           "client_id": "public-app", "flow": "device_code",
                           "ca_bundle": str(ws.em.ca_file)}}
    ws.write_config(accounts, [{"url": f"{ws.em.feed_base}/", "account": "person",
                                "preset": "azure-devops"}])
    ws.credhelper("configure", "git")
    ws.start_daemon()
    done = fill(ws, ws.em.git_url("demo.git"), check=False)
    assert done.returncode != 0 and "password=" not in done.stdout
    # the git socket stays silent, entra behind it says why and tells git to quit
    assert "credhelper login" in done.stderr and "told us to quit" in done.stderr
    assert "terminal prompts disabled" not in done.stderr


def test_daemon_down_with_autostart_leaves_no_git_cache_daemon(configured: Workspace) -> None:
    ws = configured
    del ws.env["CREDHELPER_NO_AUTOSTART"]
    try:
        url = ws.em.git_url("demo.git")
        token = fields(fill(ws, url).stdout)["password"]
        # git's store after the success goes to the git socket: the autostarted daemon has it
        ws.git("credential", "approve",
               input=f"url={url}\nusername=workspace\npassword={token}\n\n")
        assert git_cache_daemons(git_socket(ws)) == []
        assert fields(fill(ws, url).stdout)["password"] == token
        gets = [r for r in audit(ws) if r["event"] == "get"]
        assert python_ran(gets[0]) and not python_ran(gets[-1])
    finally:
        ws.credhelper("stop", check=False)


def test_daemon_takes_its_socket_back_from_git_cache_daemon(configured: Workspace) -> None:
    ws = configured
    url = ws.em.git_url("demo.git")
    sock = git_socket(ws)
    stored = "a-password-git-cached-while-the-daemon-was-down"
    # the daemon is down: git's store spawns git's own cache daemon on our path
    ws.git("credential-cache", f"--socket={sock}", "--timeout=60", "store",
           input=f"url={url}\nusername=someone\npassword={stored}\n\n")
    squatters = git_cache_daemons(sock)
    try:
        assert squatters, "git did not start its cache daemon: the case is not exercised"
        assert fields(fill(ws, url).stdout)["password"] == stored
        ws.start_daemon()
        assert wait_for(lambda: git_cache_daemons(sock) == [], timeout=10)
        answer = fields(fill(ws, url).stdout)
        assert answer["username"] == "workspace" and answer["password"] != stored
    finally:
        for pid in git_cache_daemons(sock):
            os.kill(pid, 15)


def test_erase_of_our_token_after_a_401_drops_it(configured: Workspace) -> None:
    ws = configured
    ws.start_daemon()
    url = ws.em.git_url("demo.git")
    token = fields(fill(ws, url).stdout)["password"]
    ws.git("credential", "reject", input=f"url={url}\nusername=workspace\npassword={token}\n\n")
    dropped = [r for r in audit(ws) if r["event"] == "invalidate"]
    assert [r["outcome"] for r in dropped][:1] == ["dropped"]
    assert not python_ran(dropped[0])
    assert fields(fill(ws, url).stdout)["password"] != token
    # another password erased for our URL reaches the daemon but drops nothing
    ws.git("credential", "reject", input=f"url={url}\nusername=x\npassword=not-ours\n\n")
    assert [r["outcome"] for r in audit(ws) if r["event"] == "invalidate"][-1] == "not_held"


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_a_stranger_on_the_git_socket_gets_nothing_and_is_audited(ws: Workspace) -> None:
    # sockets in a directory the stranger can reach (pytest's own tmp tree is closed to it)
    shared = Path(tempfile.mkdtemp(prefix="credhelper-git-peer-", dir="/tmp"))
    try:
        os.chmod(shared, 0o711)
        ws.socket = shared / "run" / "daemon.sock"
        ws.env["CREDHELPER_SOCKET"] = str(ws.socket)
        ws.default_config()
        ws.start_daemon()
        sock = git_socket(ws)
        # open the modes wide, so only the peer-uid check stands between the stranger and a token
        os.chmod(sock.parent, 0o711)
        os.chmod(sock, 0o666)
        nobody = pwd.getpwnam("nobody")
        done = subprocess.run(
            ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
             "git", "credential-cache", f"--socket={sock}", "get"],
            input=f"protocol=https\nhost={ws.em.feed_base.split('//')[1]}\npath=git/demo.git\n",
            capture_output=True, text=True, timeout=60, env={"PATH": os.environ["PATH"], "HOME": "/"})
        os.chmod(sock.parent, 0o700)
        assert done.stdout == ""
        refused = [r for r in audit(ws) if r["event"] == "refused"]
        assert refused and refused[-1]["uid"] == nobody.pw_uid
        # and our own uid, on the same socket, is served
        assert fields(fill_through(ws, sock).stdout)["username"] == "workspace"
    finally:
        ws.stop_daemon()
        shutil.rmtree(shared, ignore_errors=True)


def fill_through(ws: Workspace, sock: Path) -> subprocess.CompletedProcess:
    host = ws.em.feed_base.split("//", 1)[1]
    return ws.git("credential-cache", f"--socket={sock}", "get",
                  input=f"protocol=https\nhost={host}\npath=git/demo.git\n")
