"""Doctor check for pip, uv and poetry: would they find a fresh token the way they really look?

All three read the user's netrc (``$NETRC``, else ``~/.netrc``) in whatever venv they run, so the
check reads that file with the standard library's ``netrc`` module, as requests does inside pip
and poetry (a venv without credhelper runs exactly that code), and asks, per routed host, whether
the entry it gets is the daemon's and still unexpired. Passwords are compared, never shown.
"""

import netrc
import os
import shutil
import stat
import time
from typing import Dict, Iterator, List, Optional

from ... import paths
from ...sinks import netrc as netrc_sink
from ...sinks.netrc import PYTHON_TOOLS
from ...toolrecord import CONFIGURED, ToolRecord
from ..configure_python import runs_our_keyring
from .report import FAIL, OK, SKIP, WARN, Check, Context, jwt_expiry


def _unsigned(ctx: Context) -> Dict[str, bool]:
    """account -> True when the daemon says a person has not signed in to it yet."""
    accounts = (ctx.daemon or {}).get("accounts") or []
    return {str(a.get("name")): True for a in accounts
            if isinstance(a, dict) and "signed_in" in a and not a.get("signed_in")}


def _read(path: "os.PathLike[str]") -> "tuple[Optional[netrc.netrc], Optional[str]]":
    try:
        return netrc.netrc(os.fspath(path)), None
    except FileNotFoundError:
        return None, None
    except (netrc.NetrcParseError, OSError, UnicodeDecodeError) as exc:
        # requests swallows this and sends no credentials at all, for any host
        return None, str(getattr(exc, "msg", None) or type(exc).__name__)


def _keyring_linked() -> Optional[str]:
    """The ``keyring`` pip finds on PATH when it is credhelper's (``configure pip`` links it)."""
    found = shutil.which("keyring")
    if found and runs_our_keyring(found):
        return found
    return None


def check_python_tools(ctx: Context) -> Iterator[Check]:
    """pip, uv and poetry: configured, and the netrc they read holds a fresh token per host."""
    if ctx.config is None:
        yield Check("pip/uv/poetry", SKIP, "needs a valid config")
        return
    record = ToolRecord()
    tools = [t for t in PYTHON_TOOLS if record.state(t) == CONFIGURED]
    for tool in PYTHON_TOOLS:
        if tool not in tools and (tool == "pip" or shutil.which(tool)):
            yield Check(tool, WARN, f"{tool} is not configured: it gets no token from credhelper",
                        f"run: credhelper configure {tool}")
    if not tools:
        return
    name = "/".join(tools)
    served, skipped = netrc_sink.plan(ctx.config.routes)
    for host, why in skipped.items():
        yield Check(name, WARN, f"{host}: no netrc line, {why}",
                    "link credhelper-keyring as `keyring` on PATH and run pip with "
                    "--keyring-provider subprocess (or pass `credhelper token URL` yourself)")
    path = paths.netrc_path()
    daemon_file = ((ctx.daemon or {}).get("netrc") or {}).get("file")
    if daemon_file and daemon_file != str(path):
        yield Check(name, FAIL, f"the daemon writes {daemon_file}, but {name} here read {path}",
                    "set NETRC the same for both (or unset it), then: credhelper stop; credhelper start")
        return
    fix_daemon = ("the daemon writes it: credhelper start" if ctx.daemon is None
                  else "the daemon writes it after its next token; to force it: credhelper reload")
    parsed, error = _read(path)
    if error:
        yield Check(name, FAIL, f"{path} cannot be parsed ({error}): pip and poetry then send "
                    "no credentials to any host", f"fix {path} by hand")
        return
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = 0o600
    if mode & 0o077:
        yield Check(name, FAIL, f"{path} has mode {mode:o} and holds tokens", f"run: chmod 600 {path}")
    ours = netrc_sink.block_entries(path)
    clash = set(netrc_sink.other_entries(path, served))
    unsigned = _unsigned(ctx)
    linked = _keyring_linked() if "pip" in tools else None
    problems: List[Check] = []
    for host, entry in served.items():
        account = entry.slot[0]
        found = parsed.authenticators(host) if parsed is not None else None
        if unsigned.get(account):
            at_terminal = (f"pip at a terminal asks {linked}, which shows the sign-in code"
                           if linked else f"pip at a terminal asks 'User for {host}:', as no "
                           "keyring command of credhelper's is on PATH; press Ctrl-C")
            problems.append(Check(
                name, FAIL, f"{host}: account {account!r} is not signed in, so {name} get a 401 "
                f"and credhelper cannot tell them why ({at_terminal})",
                f"run: credhelper login {account}"))
        elif host in clash or (found and host in ours and found[2] != ours[host][1]):
            problems.append(Check(
                name, FAIL, f"{host}: another 'machine {host}' entry in {path}, outside "
                "credhelper's block, may be the one the tools use",
                f"delete that entry from {path}"))
        elif not found or not found[2] or host not in ours:
            problems.append(Check(name, FAIL, f"{host}: no line in {path}", fix_daemon))
        else:
            expiry = jwt_expiry(found[2])
            if expiry is not None and expiry <= time.time():
                problems.append(Check(name, FAIL, f"{host}: the token in {path} has expired",
                                      fix_daemon))
    yield from problems
    if not problems and served:
        yield Check(name, OK, f"{path}: a fresh token for {len(served)} host(s) "
                    f"({', '.join(sorted(served))})")
