"""Another local user plants a socket where ours is looked for: no client sends it a byte.

The planted daemon runs as a real second uid (setpriv); the victim is this test's own uid.
"""

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pytest

from credhelper.client import Client
from credhelper.errors import ForeignSocket
from harness import BIN, wait_for
from users import as_user, needs_root, user

pytestmark = needs_root

# A stand-in daemon that records what it is sent and answers every request with a token.
PLANTED = r"""
import os, socket, sys
path, record = sys.argv[1], sys.argv[2]
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
os.chmod(path, 0o777)
srv.listen(16)
open(record + ".ready", "w").close()
while True:
    conn, _ = srv.accept()
    conn.settimeout(5)
    data = b""
    try:
        while b"\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    with open(record, "ab") as f:
        f.write(data + b"\0")
    try:
        conn.sendall(b'{"ok":true,"username":"x","token":"planted","expires_on":4102444800,'
                     b'"user_code":"EVIL","verification_uri":"https://example.com/","state":"done"}\n')
    except OSError:
        pass
    conn.close()
"""


@pytest.fixture
def base() -> Iterator[Path]:
    """A scratch directory in /tmp that both users can reach."""
    root = Path("/tmp") / f"credhelper-hn-{uuid.uuid4().hex[:8]}"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    yield root
    subprocess.run(["rm", "-rf", str(root)], check=False)


def _plant(base: Path, sock_dir: Path) -> Tuple[subprocess.Popen, Path]:
    """Start the planted daemon as another uid on ``sock_dir/daemon.sock``; returns it and its record."""
    stranger = user("credhelper-t2")
    records = base / "records"
    records.mkdir(mode=0o755)
    os.chown(records, stranger.pw_uid, stranger.pw_gid)
    sock_dir.mkdir(mode=0o755, exist_ok=True)
    os.chown(sock_dir, stranger.pw_uid, stranger.pw_gid)
    record = records / "received"
    proc = as_user(stranger, ["/usr/bin/python3", "-c", PLANTED, str(sock_dir / "daemon.sock"),
                              str(record)], env={"PATH": "/usr/bin:/bin"},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(lambda: Path(str(record) + ".ready").exists() or proc.poll() is not None, 60)
    assert proc.poll() is None
    return proc, record


def _env(base: Path, sock: Path) -> Dict[str, str]:
    home = base / "victim"
    home.mkdir(exist_ok=True)
    return {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(home), "CREDHELPER_SOCKET": str(sock),
            "CREDHELPER_CONFIG": str(home / "none.toml"), "CREDHELPER_STATE_DIR": str(home / "st"),
            "CREDHELPER_NO_AUTOSTART": "1"}


def _victim_runs_everything(base: Path, sock: Path) -> None:
    env = _env(base, sock)
    git = subprocess.run([str(BIN / "git-credential-entra"), "get"], env=env, timeout=60,
                         input=b"protocol=https\nhost=dev.azure.com\npath=contoso/x\n\n",
                         capture_output=True)
    assert git.returncode == 0 and git.stdout == b"", git.stdout
    assert b"refusing the daemon socket" in git.stderr and b"Traceback" not in git.stderr
    for args in (["token", "https://dev.azure.com/contoso/"], ["login"], ["status"]):
        cli = subprocess.run([str(BIN / "credhelper"), *args], env=env, timeout=60,
                             capture_output=True, text=True)
        assert cli.returncode != 0 and "planted" not in cli.stdout and "EVIL" not in cli.stdout
        assert "refusing the daemon socket" in cli.stderr and "Traceback" not in cli.stderr
        assert len(cli.stderr.strip().splitlines()) == 1, cli.stderr
    keyring = subprocess.run(
        [sys.executable, "-c", "from credhelper.frontends.pip_keyring import CredhelperKeyring as K\n"
         "try:\n    print(K.priority)\nexcept RuntimeError:\n    print('not viable')"],
        env=env, timeout=60, capture_output=True, text=True)
    assert keyring.stdout.strip() == "not viable", keyring.stdout + keyring.stderr


def test_socket_in_a_directory_of_another_user_gets_nothing(base: Path) -> None:
    sock_dir = base / "shared"
    planted, record = _plant(base, sock_dir)
    try:
        with pytest.raises(ForeignSocket, match="belongs to uid"):
            Client(sock_dir / "daemon.sock").get("https://dev.azure.com/contoso/")
        _victim_runs_everything(base, sock_dir / "daemon.sock")
        assert not record.exists() or record.read_bytes().strip(b"\0") == b""
    finally:
        planted.kill()
        planted.wait()


def test_socket_in_our_own_private_directory_but_served_by_another_uid_gets_nothing(
        base: Path) -> None:
    sock_dir = base / "ours"
    planted, record = _plant(base, sock_dir)
    try:
        # The directory becomes ours and private after the other user bound in it: only the
        # peer check can tell.
        os.chown(sock_dir, os.getuid(), os.getgid())
        os.chmod(sock_dir, 0o700)
        with pytest.raises(ForeignSocket, match="runs as uid"):
            Client(sock_dir / "daemon.sock").get("https://dev.azure.com/contoso/")
        _victim_runs_everything(base, sock_dir / "daemon.sock")
        assert record.exists(), "the planted daemon never saw the connections"
        assert record.read_bytes().strip(b"\0") == b""
    finally:
        planted.kill()
        planted.wait()


def test_socket_directory_open_to_others_is_refused_even_when_ours(base: Path) -> None:
    sock_dir = base / "loose"
    sock_dir.mkdir(mode=0o755)
    os.chmod(sock_dir, 0o755)
    with pytest.raises(ForeignSocket, match="chmod 700"):
        Client(sock_dir / "daemon.sock").call("ping")
