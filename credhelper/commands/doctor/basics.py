"""Doctor checks of credhelper itself: the config loads, the daemon answers, files are private,
where the cache key lives."""

import os
import stat
from pathlib import Path
from typing import Iterator, Optional

from ... import config as config_mod, paths
from ...client import Client
from ...errors import CredhelperError, DaemonUnavailable
from .report import FAIL, OK, WARN, Check, Context


def check_config(ctx: Context) -> Iterator[Check]:
    """The config file loads and validates."""
    path = paths.config_path()
    loose = paths.loose_config(path)
    if loose is not None:  # the daemon refuses it; say so with the fix the message carries
        yield Check("config", FAIL, loose, loose.rpartition("; ")[2] if "run: " in loose
                    else f"move {path} to a directory only you own")
        return
    try:
        ctx.config = config_mod.load(path)
    except CredhelperError as exc:
        fix = ("run: credhelper init --help" if not path.exists()
               else f"edit {path} at the place named above")
        yield Check("config", FAIL, exc.message, fix)
        return
    cfg = ctx.config
    yield Check("config", OK, f"{path}: {len(cfg.accounts)} account(s), {len(cfg.routes)} route(s)")


def check_daemon(ctx: Context) -> Iterator[Check]:
    """A daemon answers on the socket, with the config we read."""
    client = Client(timeout=5.0)
    try:
        ctx.daemon = client.call("status", timeout=5.0)
    except DaemonUnavailable as exc:
        yield Check("daemon", FAIL, exc.message,
                    "run: credhelper start   (or: systemctl --user start credhelper.socket)")
        return
    except CredhelperError as exc:
        # It is running (it answered): starting it is not the fix, its own log says more.
        yield Check("daemon", FAIL, f"the daemon answers, but its status failed: {exc.message}",
                    f"see {paths.state_dir() / 'daemon.log'}; then: credhelper stop; credhelper start")
        return
    yield Check("daemon", OK, f"pid {ctx.daemon.get('pid')} on {client.socket_path}")
    if ctx.daemon.get("config_error"):
        yield Check("daemon config", FAIL,
                    f"the daemon kept its previous config: {ctx.daemon['config_error']}",
                    f"fix {paths.config_path()}; the daemon reloads it by itself")
    elif ctx.daemon.get("config") and Path(ctx.daemon["config"]) != paths.config_path():
        yield Check("daemon config", WARN,
                    f"the daemon reads {ctx.daemon['config']}, this shell {paths.config_path()}",
                    "set CREDHELPER_CONFIG the same for both, then: credhelper stop; credhelper start")


def _private(name: str, path: Path, mode: int, kind: str) -> Optional[Check]:
    """A finding when ``path`` is not ours or is looser than ``mode``; None when fine or absent."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if info.st_uid != os.getuid():
        return Check(name, FAIL, f"{path} belongs to uid {info.st_uid}, not to you",
                     f"remove it (or fix its owner): sudo chown {os.getuid()} {path}")
    actual = stat.S_IMODE(info.st_mode)
    if actual & ~mode & 0o777:
        return Check(name, FAIL, f"{kind} {path} has mode {actual:o}; others may reach it",
                     f"run: chmod {mode:o} {path}")
    return None


def check_files(ctx: Context) -> Iterator[Check]:
    """Socket dir 0700 and socket 0600; state dir 0700 and every file in it 0600; all ours."""
    socket_path, state = paths.socket_path(), paths.state_dir()
    found = [_private("socket dir", socket_path.parent, 0o700, "directory"),
             _private("socket", socket_path, 0o600, "socket"),
             _private("state dir", state, 0o700, "directory")]
    if state.is_dir():
        for entry in sorted(state.iterdir()):
            if entry.is_file() and not entry.is_symlink():
                found.append(_private("state file", entry, 0o600, "file"))
    problems = [c for c in found if c is not None]
    yield from problems
    if not problems:
        present = [str(p) for p in (socket_path.parent, state) if p.exists()]
        yield Check("permissions", OK, " and ".join(present) + " are private to you" if present
                    else "socket and state directories are not created yet")


def check_key_storage(ctx: Context) -> Iterator[Check]:
    """Where the cache key lives, said honestly (the daemon's own view when it runs)."""
    text = (ctx.daemon or {}).get("key_storage")
    if not text:
        try:
            from ...keystore import choose_keystore

            text = choose_keystore(paths.state_dir()).describe()
        except Exception as exc:  # noqa: BLE001 - a broken keyring is a finding, not a crash
            yield Check("key storage", WARN, f"cannot inspect the keyring ({type(exc).__name__})")
            return
    if text.startswith("key file"):
        yield Check("key storage", WARN, text,
                    "for better protection install a keyring backend (e.g. Secret Service)")
    else:
        yield Check("key storage", OK, text)
