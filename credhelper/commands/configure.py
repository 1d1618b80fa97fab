"""``credhelper configure git|pip|npm|pnpm``: point each tool at credhelper, touching nothing else.

Each function returns one human-readable line per change (the same lines with ``dry_run=True``,
when nothing is written), so a second run returns ``[]``. Files are edited line by line, never
re-serialised, so comments, ordering and unrelated settings survive byte for byte; writes go to a
temp file that is fsynced and renamed over the original (through symlinks, so dotfile managers
keep their links).
"""

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from .. import paths
from ..atomic import write_atomic
from ..config import Config
from ..errors import ConfigError
from ..routing import Router, redact_url

GIT_HELPER = "entra"
BEGIN = "# >>> credhelper >>>"
END = "# <<< credhelper <<<"
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


def _append(lines: List[str], line: str) -> None:
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines.append(line + "\n")


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


def configure_git(config: Config, dry_run: bool = False, git: str = "git") -> List[str]:
    """Make every routed origin use only the ``entra`` helper (DESIGN §6.7); useHttpPath as needed."""
    router = Router(config.routes)
    changes: List[str] = []
    for origin in router.origins():
        key = f"credential.{origin}.helper"
        code, out = _git(git, "-z", "--get-all", key, ok=(0, 1))
        current = out.split("\0")[:-1] if code == 0 else []
        if current != ["", GIT_HELPER]:
            was = ", ".join(repr(v) for v in current) or "unset"
            changes.append(f"git: {key} = '' then {GIT_HELPER!r} (was: {was})")
            if not dry_run:
                _git(git, "--unset-all", key, ok=(0, 5))
                _git(git, "--add", key, "")
                _git(git, "--add", key, GIT_HELPER)
        if router.needs_path(origin):
            key = f"credential.{origin}.useHttpPath"
            code, out = _git(git, "--type=bool", "--get", key, ok=(0, 1))
            if out.strip() != "true":
                changes.append(f"git: {key} = true (routes on this host differ by path)")
                if not dry_run:
                    _git(git, key, "true")
    return changes


# pip ---------------------------------------------------------------------------------------

def pip_config_path() -> Path:
    """The user pip config: ``$PIP_CONFIG_FILE``, else ``$XDG_CONFIG_HOME/pip/pip.conf``."""
    explicit = os.environ.get("PIP_CONFIG_FILE")
    if explicit:
        if explicit == os.devnull:
            raise ConfigError(f"PIP_CONFIG_FILE is {os.devnull}, so pip reads no config file; "
                              "unset it or point it at a file")
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    return base / "pip" / "pip.conf"


def configure_pip(dry_run: bool = False) -> List[str]:
    """Set ``keyring-provider = import`` under ``[global]`` in the user pip config."""
    path = pip_config_path()
    lines = _lines(path)
    wanted = "keyring-provider = import"
    section, start, insert_at, found = None, None, None, None
    for index, line in enumerate(lines):
        header = re.match(r"\s*\[([^\]]+)\]\s*$", line)
        if header:
            section = header.group(1).strip()
            if section == "global" and start is None:
                start = insert_at = index + 1
            continue
        if section == "global" and line.strip() and not line.lstrip().startswith(("#", ";")):
            insert_at = index + 1
            setting = re.match(r"keyring[-_]provider\s*[=:]\s*(.*?)\s*$", line)
            if setting:
                found = (index, setting.group(1))
    if found and found[1] == "import":
        return []
    if found:
        change = f"pip: {path}: keyring-provider = import (was: {found[1]})"
        lines[found[0]] = wanted + "\n"
    elif start is not None:
        change = f"pip: {path}: keyring-provider = import added to [global]"
        lines.insert(insert_at, wanted + "\n")
    else:
        change = f"pip: {path}: [global] keyring-provider = import added"
        if lines:
            _append(lines, "")
        _append(lines, "[global]")
        _append(lines, wanted)
    if not dry_run:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        _atomic_write(path, "".join(lines), mode)
    return [change]


# npm / pnpm --------------------------------------------------------------------------------

def _outside_block(lines: List[str]) -> List[bool]:
    """For each line, whether it lies outside the managed block (which the npm sink owns)."""
    inside, out = False, []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ConfigError(f"{paths.npmrc_path()}:{number}: '{BEGIN}' inside the block")
            inside = True
        out.append(not inside)
        if stripped == END:
            if not inside:
                raise ConfigError(f"{paths.npmrc_path()}:{number}: '{END}' without '{BEGIN}'")
            inside = False
    if inside:
        raise ConfigError(f"{paths.npmrc_path()}: '{BEGIN}' has no '{END}'; fix the file by hand")
    return out


def nerf_dart(registry: str) -> str:
    """npm's config key prefix for a registry: ``//host[:port]/path/`` (last segment dropped
    unless the URL ends in ``/``, as npm resolves ``.`` against it)."""
    parts = urlsplit(registry)
    netloc = parts.netloc.lower()
    if netloc.endswith(":443"):
        netloc = netloc[:-4]
    return f"//{netloc}{parts.path.rsplit('/', 1)[0]}/"


def _credhelper_exe(explicit: Optional[str]) -> str:
    candidates = [explicit] if explicit else [
        str(Path(sys.executable).parent / "credhelper"), shutil.which("credhelper")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    raise ConfigError("cannot find the credhelper executable; pass its path")


def _helper_script(registry: str, exe: str) -> Tuple[Path, str]:
    parts = urlsplit(registry)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", parts.netloc + parts.path).strip("-.")[:60]
    digest = hashlib.sha256(registry.encode("utf-8")).hexdigest()[:8]
    path = paths.state_dir() / "pnpm" / f"{safe}-{digest}"
    text = ("#!/bin/sh\n"
            "# Written by `credhelper configure pnpm`: pnpm's tokenHelper for this registry.\n"
            f"exec {shlex.quote(exe)} token --header-value {shlex.quote(registry)}\n")
    return path, text


def configure_pnpm(config: Config, dry_run: bool = False,
                   credhelper_exe: Optional[str] = None) -> List[str]:
    """One tokenHelper script per npm registry, named by ``//registry/:tokenHelper`` in npmrc."""
    if not config.npm_registries:
        return []
    exe = _credhelper_exe(credhelper_exe)
    npmrc = paths.npmrc_path()
    lines = _lines(npmrc)
    outside = _outside_block(lines)
    changes: List[str] = []
    for registry in config.npm_registries:
        script, text = _helper_script(registry, exe)
        try:
            current = script.read_text(encoding="utf-8")
            fresh = current == text and script.stat().st_mode & 0o777 == 0o700
        except OSError:
            fresh = False
        if not fresh:
            changes.append(f"pnpm: {script}: runs credhelper token for {redact_url(registry)}")
            if not dry_run:
                paths.ensure_private_dir(paths.state_dir())
                paths.ensure_private_dir(script.parent)
                _atomic_write(script, text, 0o700)
        key = f"{nerf_dart(registry)}:tokenHelper"
        setting = f"{key}={script}"
        mine = [i for i, line in enumerate(lines)
                if outside[i] and line.split("=", 1)[0].strip() == key]
        if [lines[i].rstrip("\r\n") for i in mine] == [setting]:
            continue
        changes.append(f"pnpm: {npmrc}: {setting}")
        if mine:
            ending = lines[mine[0]][len(lines[mine[0]].rstrip("\r\n")):] or "\n"
            lines[mine[0]] = setting + ending
            for index in reversed(mine[1:]):
                del lines[index]
                del outside[index]
        else:
            _append(lines, setting)
            outside.append(True)
    if changes and not dry_run:
        _atomic_write(npmrc, "".join(lines), 0o600)
    return changes


def configure_npm(config: Config, dry_run: bool = False, remove: bool = False) -> List[str]:
    """Check every npm registry has a route; with ``remove``, delete the managed npmrc block."""
    router = Router(config.routes)
    for registry in config.npm_registries:
        router.resolve(registry)
    if not remove:
        return []   # the daemon's npm sink writes the block
    npmrc = paths.npmrc_path()
    lines = _lines(npmrc)
    outside = _outside_block(lines)
    kept = [line for line, keep in zip(lines, outside) if keep]
    if len(kept) == len(lines):
        return []
    if not dry_run:
        _atomic_write(npmrc, "".join(kept), 0o600)
    return [f"npm: {npmrc}: removed the credhelper block ({len(lines) - len(kept)} lines)"]
