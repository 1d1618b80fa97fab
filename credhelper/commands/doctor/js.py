"""Doctor checks for the JavaScript tools as each one looks for a token.

npm, pnpm, bun and yarn 1 read the user npmrc (``tools.check_npm`` checks the block there);
this module checks what would make npm 11 warn, and yarn 2+'s own ``~/.yarnrc.yml``. None of
these tools runs anything of ours, so they cannot ask a person to sign in: when the block is
empty because nobody has, the fix names ``credhelper login ACCOUNT``.
"""

import os
import re
import shutil
import stat
from typing import Iterator, List, Optional

from ... import paths
from ...errors import CredhelperError
from ...routing import Router, redact_url
from ...sinks.npmrc import BEGIN, END, registry_key
from ...sinks.yarnrc import has_own_registries, yarnrc_path
from ...toolrecord import CONFIGURED, REMOVED, ToolRecord
from .report import FAIL, OK, WARN, Check, Context, token_problem

_TOKEN_LINE = re.compile(r'^\s+npmAuthToken: "([^"]*)"\s*$')


def login_fix(ctx: Context, registries: List[str]) -> Optional[str]:
    """``run: credhelper login ACCOUNT`` when a registry's account is a person not signed in."""
    if ctx.config is None or ctx.daemon is None:
        return None
    waiting = {a.get("name") for a in ctx.daemon.get("accounts", [])
               if a.get("flow") == "device_code" and not a.get("signed_in")}
    router = Router(ctx.config.routes)
    for registry in registries:
        try:
            account = router.resolve(registry).account
        except CredhelperError:
            continue
        if account in waiting:
            # npm, pnpm, bun and yarn read a file: doctor is the only one that can say this
            return f"run: credhelper login {account}"
    return None


def check_npm_warnings(ctx: Context) -> Iterator[Check]:
    """Nothing credhelper wrote into the user npmrc makes npm 11 print ``npm warn``."""
    npmrc = paths.npmrc_path()
    try:
        lines = npmrc.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return
    ours = str(paths.state_dir() / "pnpm") + "/"
    legacy = [line.partition("=")[0].strip() for line in lines
              if line.partition("=")[0].strip().endswith(":tokenHelper")
              and line.partition("=")[2].strip().startswith(ours)]
    if legacy:
        yield Check("npm warnings", FAIL, f"{npmrc}: {len(legacy)} tokenHelper line(s) from an "
                    "older credhelper; npm 11 warns about them on every command",
                    "run: credhelper configure pnpm   (pnpm reads the token block instead)")
    auth = [line.partition("=")[0].strip() for line in lines
            if line.partition("=")[0].strip().split(":")[-1] == "always-auth"]
    if auth:
        yield Check("npm warnings", WARN, f"{npmrc}: always-auth ({auth[0]}); npm 11 warns about it",
                    "take it out; where only yarn 1 runs, YARN_ALWAYS_AUTH=true in the "
                    "environment serves it instead (npm never reads it; yarn 2+ refuses it)")
    if not legacy and not auth:
        yield Check("npm warnings", OK, f"{npmrc}: nothing npm 11 warns about from credhelper")


def check_yarn(ctx: Context) -> Iterator[Check]:
    """Yarn 2+ finds a live token for every registry in ``~/.yarnrc.yml`` (when configured)."""
    if ctx.config is None or not ctx.config.npm_registries:
        return
    state = ToolRecord().state("yarn")
    path = yarnrc_path()
    if state != CONFIGURED:
        if state == REMOVED:
            yield Check("yarn", OK, "not kept by credhelper (configure yarn --remove); "
                        "yarn 1 still reads the npm block")
        elif shutil.which("yarn"):
            yield Check("yarn", WARN, f"yarn 2+ reads only {path}, which credhelper does not keep",
                        "run: credhelper configure yarn")
        return
    fix = (login_fix(ctx, list(ctx.config.npm_registries))
           or ("the daemon writes it: credhelper start" if ctx.daemon is None
               else "the daemon rewrites it after its next token; to force it: credhelper reload"))
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        yield Check("yarn", FAIL, f"{path} is missing", fix)
        return
    begin, end = text.find(BEGIN), text.find(END)
    outside = text[:begin] + text[end:] if 0 <= begin < end else text
    if has_own_registries(outside):
        yield Check("yarn", FAIL, f"{path} has its own npmRegistries; credhelper cannot add its block",
                    "move those entries into a project .yarnrc.yml")
        return
    if begin < 0 or end < begin:
        yield Check("yarn", FAIL, f"{path}: the credhelper block is missing", fix)
        return
    if mode & 0o077:
        yield Check("yarn", FAIL, f"{path} has mode {mode:o} and holds tokens", f"run: chmod 600 {path}")
    block = text[begin:end].splitlines()
    fine = True
    for registry in ctx.config.npm_registries:
        key = f'  "{registry_key(registry).rstrip("/")}":'
        token = None
        if key in block:
            found = _TOKEN_LINE.match(block[min(block.index(key) + 2, len(block) - 1)])
            token = found.group(1) if found else None
        problem = token_problem(token, path)
        if problem:
            fine = False
            yield Check("yarn", FAIL, f"{redact_url(registry)}: {problem}", fix)
    if fine:
        yield Check("yarn", OK, f"{path}: {len(ctx.config.npm_registries)} registry token(s) present")
