"""``credhelper doctor``: check the set-up end to end and say how to fix each problem.

Each check yields :class:`Check` results: ``ok``, ``warn`` (worth knowing, not broken), ``fail``
(something a tool will trip over) or ``skip`` (could not be judged because something it needs is
broken; that something is reported on its own). A result never holds a token: token replies are
read for their expiry and dropped right here.
"""

import json
import os
import stat
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

from . import config as config_mod, paths
from .client import Client
from .errors import CredhelperError

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
_MARK = {OK: "✓", WARN: "!", FAIL: "✗", SKIP: "-"}


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, how it stands, and the command or edit that fixes it."""

    name: str
    status: str
    message: str
    fix: Optional[str] = None


@dataclass
class Context:
    """What the checks share: the config (None when broken) and the daemon's ping reply."""

    config: Optional[config_mod.Config] = None
    daemon: Optional[Dict[str, Any]] = None
    issuers: Optional[List[str]] = None


def check_config(ctx: Context) -> Iterator[Check]:
    """The config file loads and validates."""
    path = paths.config_path()
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
    except CredhelperError as exc:
        yield Check("daemon", FAIL, exc.message,
                    "run: credhelper start   (or: systemctl --user start credhelper.socket)")
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
            from .keystore import choose_keystore

            text = choose_keystore(paths.state_dir()).describe()
        except Exception as exc:  # noqa: BLE001 - a broken keyring is a finding, not a crash
            yield Check("key storage", WARN, f"cannot inspect the keyring ({type(exc).__name__})")
            return
    if text.startswith("key file"):
        yield Check("key storage", WARN, text,
                    "for better protection install a keyring backend (e.g. Secret Service)")
    else:
        yield Check("key storage", OK, text)


def _checks() -> List[Callable[[Context], Iterator[Check]]]:
    from . import doctor_idp, doctor_python, doctor_scan, doctor_tools

    return [check_config, check_daemon, check_files, doctor_tools.check_git,
            doctor_python.check_python_tools, doctor_tools.check_npm, doctor_idp.check_idp,
            doctor_idp.check_tokens, check_key_storage, doctor_scan.check_workspace]


def collect() -> List[Check]:
    """Run every check in order; a check that crashes is reported, never raised."""
    ctx, results = Context(), []
    for check in _checks():
        try:
            results.extend(check(ctx))
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            name = check.__name__.replace("check_", "")
            results.append(Check(name, FAIL, f"the check itself failed: {type(exc).__name__}",
                                 "please report this with `credhelper doctor --json`"))
    return results


def render(results: List[Check]) -> str:
    """The human list: one line per finding, a fix line under each problem."""
    lines = []
    for result in results:
        lines.append(f"{_MARK[result.status]} {result.name}: {result.message}")
        if result.fix and result.status in (FAIL, WARN):
            lines.append(f"    fix: {result.fix}")
    failed = sum(r.status == FAIL for r in results)
    warned = sum(r.status == WARN for r in results)
    lines.append("all good" if not failed and not warned else
                 f"{failed} problem(s), {warned} warning(s)")
    return "\n".join(lines)


def run_doctor(as_json: bool = False) -> int:
    """Run the checks, print them; 0 when nothing failed (warnings alone are fine), else 1."""
    started = time.monotonic()
    results = collect()
    healthy = not any(r.status == FAIL for r in results)
    if as_json:
        print(json.dumps({"ok": healthy, "seconds": round(time.monotonic() - started, 2),
                          "checks": [asdict(r) for r in results]}, indent=2))
    else:
        print(render(results))
    return 0 if healthy else 1
