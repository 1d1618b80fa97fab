"""Disk full while the daemon writes its cache: a real full filesystem, not a monkeypatched ENOSPC.

The real daemon runs in a private mount namespace (``unshare -m``) with a 256 KiB tmpfs on its
state home, against the emulator. A person signs in (the MSAL cache and the key land on the
tmpfs), a filler file takes every free byte, and a new token makes the daemon persist. It must
keep serving the token it holds, say why in one line (no traceback, no token), leave the old
cache intact (it decrypts once there is room) and no temp file behind, and persist again once
there is room. The test reads the tmpfs through ``/proc/<daemon pid>/root``: it lives only in
the daemon's namespace and goes away with it.
"""

import errno
import os
import shutil
import subprocess
from pathlib import Path
from typing import List

import msal
import pytest

import leaks
from credhelper.keystore import KeyFileStore
from credhelper.vault import Vault
from harness import BIN, Workspace
from signin import FEED_SCOPE, device_account, sign_in

TMPFS_SIZE = "256k"
# the daemon runs as sh's exec, so Popen's pid is the daemon's and its namespace holds the tmpfs
MOUNT_THEN_DAEMON = 'mount -t tmpfs -o size={size},mode=0700 credhelper-full "$1" && exec "$2" daemon'


def _why_no_namespace() -> str:
    """Empty when a private mount namespace with a tmpfs works here, else why not."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return "needs root and unshare(1) for a private mount namespace"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs none /mnt"],
                           capture_output=True)
    return "" if probe.returncode == 0 else "mount namespaces are not allowed here"


@pytest.fixture
def full_ws(ws: Workspace) -> Workspace:
    """A person's workspace whose daemon keeps its state on a small private tmpfs."""
    why = _why_no_namespace()
    if why:
        pytest.skip(why)
    ws.write_config({"work": device_account(ws)}, [
        {"url": f"{ws.em.feed_base}/held/", "account": "work", "preset": "azure-devops"},
        {"url": f"{ws.em.feed_base}/new/", "account": "work", "scopes": [FEED_SCOPE]},
    ])
    state_home = Path(ws.env["XDG_STATE_HOME"])
    state_home.mkdir(parents=True, exist_ok=True)
    ws.start_daemon(command=["unshare", "-m", "sh", "-c", MOUNT_THEN_DAEMON.format(size=TMPFS_SIZE),
                             "sh", str(state_home), str(BIN / "credhelper")])
    return ws


def _inside(ws: Workspace, path: Path) -> Path:
    """``path`` as the daemon sees it (its mount namespace), reached from ours."""
    assert ws.daemon is not None
    return Path(f"/proc/{ws.daemon.pid}/root") / str(path).lstrip("/")


def _fill(directory: Path) -> Path:
    """Write a filler file in ``directory`` until the filesystem says it is full."""
    filler = directory / "filler"
    chunk = b"\0" * 4096
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def _temp_files(state: Path) -> List[str]:
    """The vault's temp files (``vault.temp_name``) left in ``state``."""
    return sorted(p.name for p in state.iterdir() if ".tmp-" in p.name)


def _decrypts(blob: bytes, tmp: Path, state: Path) -> bool:
    """Whether ``blob`` is a cache the daemon's key opens and MSAL reads, holding a refresh token."""
    copy = tmp / "cache.bin"
    copy.write_bytes(blob)
    data = Vault(copy, KeyFileStore(state / "key")).load()
    if data is None:
        return False
    cache = msal.SerializableTokenCache()
    cache.deserialize(data.decode("utf-8"))
    return bool(list(cache.search(msal.TokenCache.CredentialType.REFRESH_TOKEN)))


def test_a_full_disk_fails_the_write_not_the_daemon(full_ws: Workspace, tmp_path: Path) -> None:
    ws = full_ws
    state = _inside(ws, ws.state_dir)
    held_url, new_url = f"{ws.em.feed_base}/held/x", f"{ws.em.feed_base}/new/x"
    sign_in(ws)
    held = ws.client().get(held_url)["token"]
    cache_before = (state / "cache.bin").read_bytes()
    kept_before = (state / "tokens.bin").read_bytes()

    filler = _fill(state)
    asked = len(ws.em.idp.requests)
    fresh = ws.client().get(new_url)  # a new scope: MSAL's cache and tokens.bin both change
    assert fresh["token"] and fresh["token"] != held
    assert len(ws.em.idp.requests) > asked, "the new token came from nowhere: nothing to persist"

    assert ws.daemon is not None and ws.daemon.poll() is None, ws.daemon_output()
    asked = len(ws.em.idp.requests)
    assert ws.client().get(held_url)["token"] == held
    assert len(ws.em.idp.requests) == asked, "the held token was not served from memory"
    out = ws.daemon_output()  # stderr: daemon.log sits on the full disk too
    lines = [line for line in out.splitlines() if "No space left on device" in line]
    cache_lines = [line for line in lines if "cannot save the token cache" in line]
    assert len(cache_lines) == 1, out
    assert "cache.bin" in cache_lines[0]
    assert any("cannot keep tokens for a restart" in line for line in lines), out
    assert "Traceback" not in out and "Logging error" not in out, out
    assert (state / "cache.bin").read_bytes() == cache_before
    assert (state / "tokens.bin").read_bytes() == kept_before
    assert _temp_files(state) == []


    filler.unlink()
    assert _decrypts(cache_before, tmp_path, state)

    # room again: the next change is written, and it is the new cache that decrypts
    ws.client().invalidate(new_url, fresh["token"])
    again = ws.client().get(new_url)["token"]
    assert again != fresh["token"]
    cache_after = (state / "cache.bin").read_bytes()
    assert cache_after != cache_before
    assert _decrypts(cache_after, tmp_path, state)
    assert (state / "tokens.bin").read_bytes() != kept_before
    assert _temp_files(state) == []
    assert ws.client().get(held_url)["token"] == held

    # the logs on the tmpfs vanish with the daemon: copy them out for the leak check
    for name in ("daemon.log", "audit.log"):
        if (state / name).exists():
            copy = ws.root / f"tmpfs-{name}"
            copy.write_bytes((state / name).read_bytes())
            leaks.scanned_files.append(copy)
