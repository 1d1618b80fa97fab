"""``credhelper configure git``: point git at credhelper, touching nothing else (and undo it).

pip, uv and poetry are in ``configure_python`` (they share the daemon's netrc block); npm, pnpm
and yarn in ``configure_js``.

Each function returns one human-readable line per change (the same lines with ``dry_run=True``,
when nothing is written), so a second run returns ``[]``. Files are edited line by line, never
re-serialised, so comments, ordering and unrelated settings survive byte for byte; writes go to a
temp file that is fsynced and renamed over the original (through symlinks, so dotfile managers
keep their links).
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .. import paths
from ..atomic import write_atomic
from ..config import Config
from ..errors import ConfigError
from ..routing import Router
from ..toolrecord import CONFIGURED, ToolRecord

GIT_HELPER = "entra"
_MAX_SOCKET_PATH = 107  # sun_path is 108 bytes on Linux, one of them the terminating NUL
_LINE = re.compile(r"[^\n]*\n|[^\n]+\Z")


def _lines(path: Path) -> List[str]:
    try:
        # surrogateescape: bytes we do not understand go back out exactly as they came in
        return _LINE.findall(path.read_bytes().decode("utf-8", "surrogateescape"))
    except FileNotFoundError:
        return []


def _atomic_write(path: Path, text: str, mode: int) -> None:
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, text.encode("utf-8", "surrogateescape"), mode)


# git ---------------------------------------------------------------------------------------

def _git(git: str, *args: str, ok: Sequence[int] = (0,)) -> Tuple[int, str]:
    try:
        done = subprocess.run([git, "config", "--global", *args], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ConfigError(f"cannot run {git!r}: not found") from None
    if done.returncode not in ok:
        reason = (done.stderr.strip().splitlines() or ["no message"])[0]
        raise ConfigError(f"git config --global {args[0]} failed: {reason}")
    return done.returncode, done.stdout


def _git_values(git: str, key: str) -> List[str]:
    code, out = _git(git, "-z", "--get-all", key, ok=(0, 1))
    return out.split("\0")[:-1] if code == 0 else []


def _git_set(git: str, key: str, values: Sequence[str]) -> None:
    _git(git, "--unset-all", key, ok=(0, 5))
    for value in values:
        _git(git, "--add", key, value)


# git's own cache daemon may stand in for ours on the git socket while the daemon is down
# (git spawns it on `store`); what it holds must never outlive a token, and tokens are handed
# out with at least ten minutes left.
GIT_CACHE_TIMEOUT = 60


def git_fallback_helper(erase: bool) -> str:
    """The ``entra`` helper as git should run it: for get (and erase) only, without site.

    git runs every helper through ``sh -c`` and calls ``store`` on each after every success; a
    shell function answers ``store`` without starting Python, and ``python -I -S`` skips the
    site module and the virtualenv's ``.pth`` files. With the git socket in front, ``erase``
    reaches the daemon there, so entra is left out of it.
    """
    launcher = Path(__file__).resolve().parents[1] / "frontends" / "git_main.py"
    run = f"{shlex.quote(sys.executable)} -I -S {shlex.quote(str(launcher))}"
    actions = "get|erase" if erase else "get"
    return f'!f() {{ case "$1" in {actions}) exec {run} "$1";; esac; }}; f'


def _git_cache_helper(socket_path: Optional[Path] = None) -> Optional[str]:
    cache = paths.git_cache_socket(socket_path or paths.socket_path())
    if len(os.fsencode(cache)) > _MAX_SOCKET_PATH:  # the daemon cannot bind it either
        return None
    return f"cache --timeout={GIT_CACHE_TIMEOUT} --socket={shlex.quote(str(cache))}"


def git_helpers(socket_path: Optional[Path] = None) -> List[str]:
    """The helper list for a routed origin: reset, the daemon's git socket, then ``entra``."""
    cache = _git_cache_helper(socket_path)
    return [""] + ([cache] if cache else []) + [git_fallback_helper(erase=cache is None)]


def configure_git(config: Config, dry_run: bool = False, git: str = "git",
                  record: Optional[ToolRecord] = None) -> List[str]:
    """Routed origins ask the daemon's git socket, then ``entra`` (DESIGN §6.7, §8); useHttpPath.

    What each changed key held before goes into the tool record, for ``--remove``.
    """
    router = Router(config.routes)
    record = record or ToolRecord()
    changes: List[str] = []
    before: Dict[str, List[str]] = {}
    wanted = git_helpers()
    for origin in router.origins():
        key = f"credential.{origin}.helper"
        current = _git_values(git, key)
        if current != wanted:
            was = ", ".join(repr(v) for v in current) or "unset"
            changes.append(f"git: {key} = " + " then ".join(repr(v) for v in wanted)
                           + f" (was: {was})")
            before[key] = current
            if not dry_run:
                _git_set(git, key, wanted)
        if router.needs_path(origin):
            key = f"credential.{origin}.useHttpPath"
            current = _git_values(git, key)
            if current[-1:] != ["true"]:
                changes.append(f"git: {key} = true (routes on this host differ by path)")
                before[key] = current
                if not dry_run:
                    _git_set(git, key, ["true"])
    if not dry_run and (changes or record.state("git") != CONFIGURED):
        record.configured("git", {"before": before})
    return changes


def remove_git(config: Config, dry_run: bool = False, git: str = "git",
               record: Optional[ToolRecord] = None) -> List[str]:
    """Put back what ``configure git`` replaced; without a record, take out just our helpers."""
    record = record or ToolRecord()
    before: Dict[str, List[str]] = record.undo("git").get("before", {})
    keys = list(before)
    for origin in Router(config.routes).origins():
        key = f"credential.{origin}.helper"
        if key not in before and _git_values(git, key) in (["", GIT_HELPER], git_helpers()):
            before[key] = []  # set up before the record existed: ours alone, so unset it
            keys.append(key)
    changes = []
    for key in keys:
        if _git_values(git, key) == before[key]:
            continue
        was = ", ".join(repr(v) for v in before[key]) or "unset"
        changes.append(f"git: {key} back to {was}")
        if not dry_run:
            _git_set(git, key, before[key])
    if not dry_run:
        record.removed("git")
    return changes
