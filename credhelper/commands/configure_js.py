"""``credhelper configure npm|pnpm|yarn [--remove]``: the JavaScript tools, and how to undo each.

npm, pnpm, bun and yarn 1 all read the user npmrc, so one block the daemon keeps fresh there
serves them all: ``configure npm`` (and ``pnpm``) records npm as configured and the daemon writes
the block. pnpm's ``tokenHelper`` is not used any more: pnpm 10 reads it only from the user
npmrc, where npm 11 warns about every unknown key; lines an older credhelper wrote are taken
out. Yarn 2+ reads only ``.yarnrc.yml``: ``configure yarn`` records yarn, and the daemon keeps an
``npmRegistries`` block in ``~/.yarnrc.yml`` (sinks/yarnrc.py).

Every function returns one line per change (the same lines with ``dry_run``); ``--remove`` marks
the tool removed in the record first (so the daemon stops writing at once) and then takes our
lines out of the file.
"""

import shutil
from pathlib import Path
from typing import List, Optional

from .. import paths
from ..config import Config
from .configure import _atomic_write, _lines
from ..errors import ConfigError
from ..routing import Router
from ..sinks.npmrc import outside_block, registry_key
from ..sinks.yarnrc import has_own_registries, yarnrc_path
from ..toolrecord import CONFIGURED, ToolRecord

# One-line notes for what `configure` cannot do by itself (printed, never an error).
YARN_CLASSIC_NOTE = ("yarn 1 sends the token for unscoped packages only with always-auth: npm 11 "
                     "warns about it in an .npmrc, yarn 2+ refuses to run with YARN_ALWAYS_AUTH "
                     "set; where only yarn 1 runs, set YARN_ALWAYS_AUTH=true (see the README)")


def _check_routes(config: Config) -> None:
    router = Router(config.routes)
    for registry in config.npm_registries:
        router.resolve(registry)


def _remove_block(path: Path, tool: str, dry_run: bool, created: bool) -> List[str]:
    """Take the managed block out of ``path``; delete the file if we created it and it is empty."""
    lines = _lines(path)
    outside = outside_block(lines, path)
    kept = [line for line, keep in zip(lines, outside) if keep]
    if len(kept) == len(lines):
        return []
    if dry_run:
        pass
    elif created and not "".join(kept).strip():
        path.unlink()
    else:
        _atomic_write(path, "".join(kept), 0o600)
    return [f"{tool}: {path}: removed the credhelper block ({len(lines) - len(kept)} lines)"]


# npm ---------------------------------------------------------------------------------------

def configure_npm(config: Config, dry_run: bool = False,
                  record: Optional[ToolRecord] = None) -> List[str]:
    """Record npm as configured: the daemon keeps the token block in the user npmrc."""
    _check_routes(config)
    record = record or ToolRecord()
    if not config.npm_registries or record.state("npm") == CONFIGURED:
        return []
    npmrc = paths.npmrc_path()
    if not dry_run:
        record.configured("npm", {"created": not npmrc.exists()})
    return [f"npm: the daemon keeps a token block for {len(config.npm_registries)} "
            f"registr{'y' if len(config.npm_registries) == 1 else 'ies'} in {npmrc}"]


def remove_npm(config: Config, dry_run: bool = False,
               record: Optional[ToolRecord] = None) -> List[str]:
    """Stop the daemon keeping the npm block (across restarts) and take the block out."""
    record = record or ToolRecord()
    undo = record.undo("npm")
    if not dry_run:
        record.removed("npm")
    npmrc = paths.npmrc_path()
    return _remove_block(npmrc, "npm", dry_run, bool(undo.get("created")))


# pnpm --------------------------------------------------------------------------------------

def _legacy_helpers(lines: List[str], outside: List[bool]) -> List[int]:
    """Indexes of ``//…/:tokenHelper=`` lines pointing at scripts an older credhelper wrote."""
    ours = str(paths.state_dir() / "pnpm") + "/"
    found = []
    for index, line in enumerate(lines):
        key, _, value = line.partition("=")
        if outside[index] and key.strip().endswith(":tokenHelper") and value.strip().startswith(ours):
            found.append(index)
    return found


def _drop_legacy_helpers(dry_run: bool) -> List[str]:
    npmrc = paths.npmrc_path()
    lines = _lines(npmrc)
    outside = outside_block(lines, npmrc)
    doomed = _legacy_helpers(lines, outside)
    changes = [f"pnpm: {npmrc}: removed {lines[i].partition('=')[0].strip()} (npm 11 warns about "
               "it; pnpm reads the token block instead)" for i in doomed]
    scripts = paths.state_dir() / "pnpm"
    if not dry_run:
        if doomed:
            _atomic_write(npmrc, "".join(l for i, l in enumerate(lines) if i not in doomed), 0o600)
        shutil.rmtree(scripts, ignore_errors=True)
    return changes


def configure_pnpm(config: Config, dry_run: bool = False,
                   record: Optional[ToolRecord] = None) -> List[str]:
    """pnpm reads the npm block: make sure the daemon keeps it; drop old tokenHelper lines."""
    _check_routes(config)
    record = record or ToolRecord()
    if not config.npm_registries:
        return []
    changes = _drop_legacy_helpers(dry_run)
    if record.state("pnpm") != CONFIGURED:
        turned_on = record.state("npm") != CONFIGURED
        changes += configure_npm(config, dry_run, record)
        changes.append(f"pnpm: reads the token block in {paths.npmrc_path()}")
        if not dry_run:
            record.configured("pnpm", {"npm": turned_on})
    return changes


def remove_pnpm(config: Config, dry_run: bool = False,
                record: Optional[ToolRecord] = None) -> List[str]:
    """Undo ``configure pnpm``: old tokenHelper lines, and the npm block if pnpm turned it on."""
    record = record or ToolRecord()
    undo = record.undo("pnpm")
    if not dry_run:
        record.removed("pnpm")
    changes = _drop_legacy_helpers(dry_run)
    if undo.get("npm"):
        changes += remove_npm(config, dry_run, record)
    return changes


# yarn --------------------------------------------------------------------------------------

def configure_yarn(config: Config, dry_run: bool = False,
                   record: Optional[ToolRecord] = None) -> List[str]:
    """Yarn 2+: the daemon keeps ``npmRegistries`` in ``~/.yarnrc.yml``; yarn 1 uses the npm block."""
    _check_routes(config)
    record = record or ToolRecord()
    if not config.npm_registries or record.state("yarn") == CONFIGURED:
        return []
    path = yarnrc_path()
    lines = _lines(path)
    outside = "".join(line for line, keep in zip(lines, outside_block(lines, path)) if keep)
    if has_own_registries(outside):
        raise ConfigError(f"{path} has its own npmRegistries; credhelper cannot add its block "
                          "beside it (move those entries into a project .yarnrc.yml)")
    for registry in config.npm_registries:
        registry_key(registry)  # the same keys as npm's; refuse what cannot be written
    if not dry_run:
        record.configured("yarn", {"created": not path.exists()})
    return [f"yarn: the daemon keeps npmRegistries for {len(config.npm_registries)} "
            f"registr{'y' if len(config.npm_registries) == 1 else 'ies'} in {path} (yarn 2+)",
            "yarn: " + YARN_CLASSIC_NOTE]


def remove_yarn(config: Config, dry_run: bool = False,
                record: Optional[ToolRecord] = None) -> List[str]:
    """Stop the daemon keeping ``~/.yarnrc.yml`` and take its block out."""
    record = record or ToolRecord()
    undo = record.undo("yarn")
    if not dry_run:
        record.removed("yarn")
    return _remove_block(yarnrc_path(), "yarn", dry_run, bool(undo.get("created")))
