"""Doctor check: no token material inside ``/workspace`` or the current git checkout.

Gitpod saves ``/workspace`` into prebuild snapshots and backups, and a checkout ends up in commits,
so a token, a copy of our cache or its key, or an npmrc with ``_authToken=`` there is a leak. The
scan is bounded (file count, file size, bytes read) and skips what holds no user files of
interest: git's object store (not ``.git/config``), ``node_modules``, virtualenvs. It names
files, never their content.
"""

import base64
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Set, Tuple
from urllib.parse import urlsplit

from ... import environment
from ...vault import MAGIC
from .report import FAIL, OK, WARN, Check, Context

WORKSPACE = "/workspace"
MAX_FILES = 20000
MAX_FILE_SIZE = 1 << 20
MAX_BYTES = 64 << 20
MAX_LISTED = 10
SKIP_DIRS = frozenset({"node_modules", ".venv", "venv", "__pycache__", ".tox", ".nox",
                       ".mypy_cache", ".pytest_cache", ".credhelper-venv"})
GIT_SKIP = frozenset({"objects", "lfs", "modules", "worktrees"})
ENTRA_HOSTS = frozenset({"login.microsoftonline.com", "sts.windows.net"})
_JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.(eyJ[A-Za-z0-9_-]{8,})\.[A-Za-z0-9_-]{8,}")
_NPM_TOKEN = re.compile(rb"_authToken\s*=\s*(?!\$\{)\S")


def scan_roots() -> List[Path]:
    """``$CREDHELPER_WORKSPACE_ROOT`` (else ``/workspace`` if present) and the current checkout."""
    roots = []
    workspace = Path(environment.workspace_root() or WORKSPACE)
    if workspace.is_dir():
        roots.append(workspace.resolve())
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, stdin=subprocess.DEVNULL, check=False, timeout=10)
        if top.returncode == 0 and top.stdout.strip():
            repo = Path(top.stdout.strip()).resolve()
            if not any(repo == root or root in repo.parents for root in roots):
                roots.append(repo)
    except (OSError, subprocess.SubprocessError):
        pass
    return roots


def _files(roots: Iterable[Path]) -> Iterator[Path]:
    for root in roots:
        for folder, dirs, names in os.walk(root):
            # a virtualenv anywhere (pyvenv.cfg marks one) is installed code, not user files;
            # in .git only the object store is skipped: .git/config can hold a credential URL
            skip = GIT_SKIP if os.path.basename(folder) == ".git" else SKIP_DIRS
            dirs[:] = [d for d in dirs if d not in skip
                       and not os.path.exists(os.path.join(folder, d, "pyvenv.cfg"))]
            for name in names:
                yield Path(folder, name)


def _issuer(token: bytes) -> Optional[str]:
    payload = token.split(b".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
    except ValueError:
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return issuer if isinstance(issuer, str) else None


def _ours(issuer: Optional[str], issuers: Set[str]) -> bool:
    if not issuer:
        return False
    return issuer.rstrip("/") in issuers or (urlsplit(issuer).hostname or "") in ENTRA_HOSTS


def classify(path: Path, data: bytes, issuers: Set[str]) -> Optional[str]:
    """What token material ``path`` holds, or None."""
    name = path.name
    if name == "cache.bin" and data.startswith(MAGIC):
        return "a credhelper token cache"
    if name == "tokens.bin" and data.startswith(MAGIC):
        return "credhelper's kept access tokens"
    if name == "key" and len(data) == 32 and (path.with_name("cache.bin").exists()
                                                or path.parent.name == "credhelper"):
        return "a credhelper cache key"
    if (name == "npmrc" or name.endswith(".npmrc")) and _NPM_TOKEN.search(data):
        return "an npmrc with an _authToken"
    for match in _JWT.finditer(data):
        if _ours(_issuer(match.group(0)), issuers):
            return "a token from your identity provider"
    return None


def scan(roots: List[Path], issuers: Set[str]) -> Tuple[List[Tuple[Path, str]], int, bool]:
    """(findings, files looked at, whether a limit cut the scan short)."""
    found: List[Tuple[Path, str]] = []
    count = budget = 0
    for path in _files(roots):
        if count >= MAX_FILES or budget >= MAX_BYTES:
            return found, count, True
        try:
            if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_FILE_SIZE:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        count += 1
        budget += len(data)
        what = classify(path, data, issuers)
        if what:
            found.append((path, what))
    return found, count, False


def check_workspace(ctx: Context) -> Iterator[Check]:
    """Nothing with token material under /workspace or in this checkout."""
    roots = scan_roots()
    if not roots:
        yield Check("workspace", OK, "no /workspace here and not inside a git checkout")
        return
    issuers = {i.rstrip("/") for i in (ctx.issuers or [])}
    for account in (ctx.config.accounts.values() if ctx.config else ()):
        for base in (account.authority, account.oidc_authority):
            if base:
                issuers.update({base.rstrip("/"), base.rstrip("/") + "/v2.0"})
    found, count, cut = scan(roots, issuers)
    where = ", ".join(str(r) for r in roots)
    for path, what in found[:MAX_LISTED]:
        yield Check("workspace", FAIL, f"{path} holds {what}",
                    f"delete it (rm {path}) and keep credhelper's state under $HOME; "
                    "a leaked token stays valid until it expires")
    if len(found) > MAX_LISTED:
        yield Check("workspace", FAIL, f"... and {len(found) - MAX_LISTED} more file(s)")
    if cut:
        yield Check("workspace", WARN, f"scanned only the first {count} files under {where}")
    elif not found:
        yield Check("workspace", OK, f"no token material in {count} file(s) under {where}")
