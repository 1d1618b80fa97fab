"""Where the socket, config, state and npmrc live, and the permission rules for them.

Environment is read on every call so tests and wrappers can point credhelper elsewhere.
This module is on the hot path: standard library only.
"""

from __future__ import annotations

import os
import stat

from . import environment
from .errors import ConfigError
# the socket's place is worked out in socketpath, which the git helper reads without os
from .socketpath import APP, home_based as _xdg, socket_file as socket_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Dict, Optional


def _path(text: str) -> Path:
    # pathlib (and the urllib.parse it pulls in) is imported only off the git helper's path
    from pathlib import Path

    return Path(text)


def config_path() -> Path:
    """``$CREDHELPER_CONFIG``, else ``$XDG_CONFIG_HOME/credhelper/config.toml``."""
    explicit = environment.config_file()
    if explicit:
        return _path(os.path.expanduser(explicit))
    return _path(os.path.join(_xdg("XDG_CONFIG_HOME", ".config"), APP, "config.toml"))


def socket_path() -> Path:
    """The socket's place (``socket_file``) as a Path."""
    return _path(socket_file())


def git_cache_socket(daemon_socket: Path) -> Path:
    """The daemon's second socket, speaking git's credential-cache protocol, beside the first."""
    return daemon_socket.with_name(daemon_socket.stem + "-git" + daemon_socket.suffix)


def state_dir() -> Path:
    """``$CREDHELPER_STATE_DIR``, else ``$XDG_STATE_HOME/credhelper``."""
    explicit = environment.state_dir()
    if explicit:
        return _path(os.path.expanduser(explicit))
    return _path(os.path.join(_xdg("XDG_STATE_HOME", ".local/state"), APP))


def npmrc_path() -> Path:
    """The user npmrc npm reads: ``$NPM_CONFIG_USERCONFIG``, else ``~/.npmrc``.

    Not the lower-case ``npm_config_userconfig``: npm exports that to every lifecycle script,
    and a script that runs git may autostart the daemon with it (see ``tool_environment``).
    """
    explicit = os.environ.get("NPM_CONFIG_USERCONFIG")
    if explicit:
        return _path(os.path.expanduser(explicit))
    return _path(os.path.join(os.environ.get("HOME") or os.path.expanduser("~"), ".npmrc"))


def netrc_path() -> Path:
    """The netrc pip (requests), uv, poetry and twine read: ``$NETRC``, else ``~/.netrc``."""
    explicit = os.environ.get("NETRC")
    if explicit:
        return _path(os.path.expanduser(explicit))
    return _path(os.path.join(os.environ.get("HOME") or os.path.expanduser("~"), ".netrc"))


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` as 0700 (parents as needed); refuse an existing one others can enter.

    The directory is made private before anything is bound or written in it, so there is no
    window in which another user could reach a socket or file inside (git's credential-cache
    explains the race of chmod-after).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{path} exists and is not a directory")
    if info.st_uid != os.getuid():
        raise ConfigError(f"{path} belongs to uid {info.st_uid}, not to us; refusing to use it")
    if info.st_mode & 0o077:
        raise ConfigError(
            f"{path} is open to other users (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run: chmod 700 {path}"
        )
    return path


def loose_config(path: Path) -> Optional[str]:
    """Why the config file at ``path`` (or its directory) cannot be trusted, or None.

    The config names commands the daemon runs (``assertion_command``): a file or directory
    that another user can write, or that belongs to someone else, would let them run code as
    us. The rule is ssh's: owned by us (or root), not writable by group or others; a directory
    with the sticky bit (``/tmp``) cannot have our file replaced, so it may be shared.
    """
    uid = os.getuid()
    try:
        info = os.stat(path)
    except OSError:
        return None  # a missing file is reported by whoever reads it
    if info.st_uid not in (uid, 0):
        return f"{path} belongs to uid {info.st_uid}, not to you; refusing to run what it says"
    if info.st_mode & 0o022:
        return (f"{path} is writable by other users (mode {stat.S_IMODE(info.st_mode):o}); "
                f"run: chmod 600 {path}")
    directory = os.path.dirname(os.path.abspath(path))
    dinfo = os.stat(directory)
    if dinfo.st_uid not in (uid, 0):
        return f"{directory} belongs to uid {dinfo.st_uid}, not to you; move {path} elsewhere"
    if dinfo.st_mode & 0o022 and not dinfo.st_mode & stat.S_ISVTX:
        return (f"{directory} is writable by other users (mode {stat.S_IMODE(dinfo.st_mode):o}); "
                f"run: chmod 700 {directory}")
    return None


# Gitpod and Ona keep /workspace in snapshots and backups: nothing with token material goes there.
SHARED_ROOTS = ("/workspace",)


def checkout_reason(path: Path, what: str) -> Optional[str]:
    """Why ``what`` at ``path`` would put token material where it travels, or None.

    A git work tree (any parent holding ``.git``) gets committed, pushed and shared; the
    shared roots are snapshotted. The path need not exist yet: its parents are what count.
    """
    real = os.path.realpath(os.fspath(path))
    for root in SHARED_ROOTS:
        if real == root or real.startswith(root + "/"):
            return f"refusing to keep the {what} at {path}: it is under {root}, which is shared"
    here = real
    while True:
        if os.path.lexists(os.path.join(here, ".git")):
            return (f"refusing to keep the {what} at {path}: it is inside the git work tree "
                    f"{here}")
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def refuse_checkout(path: Path, what: str) -> None:
    """Raise ``ConfigError`` when ``checkout_reason`` finds one."""
    reason = checkout_reason(path, what)
    if reason is not None:
        raise ConfigError(reason)


# Variables a tool sets for the processes it runs, never a person's own settings: a daemon that
# such a process autostarts must not take its paths from them.
_TOOL_PREFIXES = ("npm_", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX")


def tool_environment(environ: "Dict[str, str]") -> "Dict[str, str]":
    """``environ`` without what the calling tool put there for its own children."""
    return {k: v for k, v in environ.items() if not k.startswith(_TOOL_PREFIXES)}
