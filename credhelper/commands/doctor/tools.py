"""Doctor checks for the tools' own configuration: git helpers, pip's keyring provider, npmrc.

Nothing here prints a value from a credential: the npmrc check reads a token only to tell
whether it is present and still unexpired.
"""

import os
import shutil
import stat
import subprocess
from typing import Iterator, List, Optional, Tuple
from urllib.parse import urlsplit

from ... import paths
from ...routing import Router, redact_url
from ..configure import GIT_HELPER, git_helpers
from .report import FAIL, OK, SKIP, WARN, Check, Context, token_problem

# git helpers that keep what they are given: placed next to ours they would hold a copy of
# our token (and hand it out after it expired).
STORING = frozenset({"store", "cache", "manager", "manager-core", "osxkeychain", "libsecret",
                     "wincred", "gnome-keyring", "netrc"})
FIX_GIT = "run: credhelper configure git"


def _helper_name(value: str) -> str:
    word = value.split()[0] if value.split() else ""
    name = os.path.basename(word)
    return name[len("git-credential-"):] if name.startswith("git-credential-") else name


def _applies(key: str, origin: str) -> bool:
    """Whether ``credential[.<url>].helper`` is read for requests to ``origin``."""
    lower = key.lower()
    if lower == "credential.helper":
        return True
    if not (lower.startswith("credential.") and lower.endswith(".helper")):
        return False
    pattern = urlsplit(key[len("credential."):-len(".helper")])
    wanted = urlsplit(origin)
    port = pattern.port or (443 if pattern.scheme.lower() == "https" else None)
    return (pattern.scheme.lower() == "https" and (pattern.hostname or "") == wanted.hostname
            and port == (wanted.port or 443))


def _git_entries() -> List[Tuple[str, str, str]]:
    """(scope, key, value) of every git config entry, in the order git reads them."""
    done = subprocess.run(["git", "config", "-z", "--show-scope", "--list"], capture_output=True,
                          stdin=subprocess.DEVNULL, check=False)
    fields = done.stdout.decode("utf-8", "replace").split("\0")
    entries = []
    for scope, item in zip(fields[0::2], fields[1::2]):
        key, _, value = item.partition("\n")
        entries.append((scope, key, value))
    return entries


def helper_chain(entries: List[Tuple[str, str, str]], origin: str) -> List[Tuple[str, str]]:
    """The (scope, helper) list git builds for ``origin``; an empty value resets it, as in git."""
    chain: List[Tuple[str, str]] = []
    for scope, key, value in entries:
        if _applies(key, origin):
            chain = [] if value == "" else chain + [(scope, value)]
    return chain


def _chain_problem(chain: List[Tuple[str, str]]) -> Optional[str]:
    # git's cache client pointed at the daemon's git socket stores nothing: the daemon answers
    helpers = git_helpers()
    names = [GIT_HELPER if value == helpers[-1] else
             "credhelper-git-socket" if value in helpers[1:-1] else _helper_name(value)
             for _, value in chain]
    if GIT_HELPER not in names:
        return "git does not ask credhelper (helpers: {})".format(", ".join(names) or "none")
    ours = names.index(GIT_HELPER)
    for index, (scope, _) in enumerate(chain):
        if names[index] in STORING:
            where = "before" if index < ours else "after"
            return (f"{names[index]!r} ({scope} config) comes {where} credhelper: "
                    + ("its stored password wins over our token" if where == "before"
                       else "git would hand it our token to store"))
    return None


def check_git(ctx: Context) -> Iterator[Check]:
    """Each routed origin uses our helper and no storing one; useHttpPath where routes need it."""

    if ctx.config is None:
        yield Check("git", SKIP, "needs a valid config")
        return
    if shutil.which("git") is None:
        yield Check("git", SKIP, "git is not installed")
        return
    if shutil.which(f"git-credential-{GIT_HELPER}") is None:
        yield Check("git helper", FAIL, f"git-credential-{GIT_HELPER} is not on PATH",
                    "add credhelper's bin directory (its virtualenv's bin) to PATH")
    router, entries, fine = Router(ctx.config.routes), _git_entries(), True
    for origin in router.origins():
        problem = _chain_problem(helper_chain(entries, origin))
        if problem:
            fine = False
            yield Check("git", FAIL, f"{origin}: {problem}", FIX_GIT)
        if router.needs_path(origin):
            done = subprocess.run(
                ["git", "config", "--type=bool", "--get-urlmatch", "credential.useHttpPath", origin],
                capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
            if done.stdout.strip() != "true":
                fine = False
                yield Check("git", FAIL, f"{origin}: credential.useHttpPath is off, but routes on "
                            "this host differ by path (git would get ambiguous_route)", FIX_GIT)
    if fine:
        yield Check("git", OK, f"{len(router.origins())} origin(s) ask credhelper only")


def check_npm(ctx: Context) -> Iterator[Check]:
    """The managed npmrc block holds a live line for every ``[npm] registries`` entry."""
    from ...sinks.npmrc import block_lines, registry_key

    if ctx.config is None:
        yield Check("npm", SKIP, "needs a valid config")
        return
    if not ctx.config.npm_registries:
        yield Check("npm", OK, "no [npm] registries configured")
        return
    from ...toolrecord import REMOVED, ToolRecord
    from .js import login_fix

    npmrc = paths.npmrc_path()
    if ToolRecord().state("npm") == REMOVED:
        yield Check("npm", WARN, f"not kept by credhelper (configure npm --remove): npm, pnpm, bun "
                    f"and yarn 1 find no token in {npmrc}", "run: credhelper configure npm")
        return
    fix = login_fix(ctx, list(ctx.config.npm_registries)) or (
        "the daemon writes it: credhelper start" if ctx.daemon is None
        else "the daemon rewrites it after its next token; to force it: credhelper reload")
    try:
        text = npmrc.read_text(encoding="utf-8", errors="replace")
        mode = stat.S_IMODE(os.stat(npmrc).st_mode)
    except OSError:
        text, mode = "", 0o600
    block = block_lines(text)
    if block is None:
        yield Check("npm", FAIL, f"{npmrc}: the credhelper block is missing", fix)
        return
    fine = True
    if mode & 0o077:
        fine = False
        yield Check("npm", FAIL, f"{npmrc} has mode {mode:o} and holds tokens", f"run: chmod 600 {npmrc}")
    for registry in ctx.config.npm_registries:
        prefix = registry_key(registry) + ":_authToken="
        tokens = [line[len(prefix):].strip() for line in block if line.startswith(prefix)]
        problem = token_problem(tokens[0] if tokens else None, npmrc)
        if problem:
            fine = False
            yield Check("npm", FAIL, f"{redact_url(registry)}: {problem}", fix)
    if fine:
        yield Check("npm", OK, f"{npmrc}: {len(ctx.config.npm_registries)} registry token(s) present")
