"""``credhelper configure pip|uv|poetry [--remove]``: the Python tools read the daemon's netrc block.

pip (in any venv, with any keyring provider, with or without ``--no-input``), uv and poetry all
read the user's netrc and none of them needs credhelper importable, so configuring one writes no
file of the tool's own: it records the tool as configured, and the daemon keeps a netrc line for
every routed host netrc can serve (``sinks/netrc.py``). ``--remove`` marks the tool removed
first (the daemon stops writing at once) and, when no Python tool is left, takes the block out.

``configure pip`` also links ``credhelper-keyring`` as ``keyring`` into ``~/.local/bin`` (when
that is on PATH and no other ``keyring`` is): pip at a terminal asks its keyring command before
it prompts, so a person who has not signed in yet gets the sign-in code there instead of
``User for HOST:`` (``frontends/terminal.py``). ``--remove`` takes the link away again.
"""

import os
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .. import paths
from ..config import Config
from ..errors import ConfigError
from ..sinks import netrc as netrc_sink
from ..sinks.netrc import PYTHON_TOOLS
from ..toolrecord import CONFIGURED, ToolRecord


def configure_python_tool(tool: str, config: Config, dry_run: bool = False,
                          record: Optional[ToolRecord] = None) -> List[str]:
    """Record ``tool`` as configured: the daemon keeps its hosts' tokens in the netrc block."""
    record = record or ToolRecord()
    served, skipped = netrc_sink.plan(config.routes)
    if not served:
        reasons = "; ".join(f"{host}: {why}" for host, why in skipped.items()) or "no routes"
        raise ConfigError(f"no routed host can be served to {tool} through netrc ({reasons})")
    link_changes, link = _link_keyring(dry_run) if tool == "pip" else ([], None)
    people = any(a.flow == "device_code" for a in config.accounts.values())
    if link is None and not people and not skipped:
        link_changes = []  # no one to sign in, no host netrc leaves out: nothing is missing
    if record.state(tool) == CONFIGURED:  # again: only a link made now is news
        if link is None:
            return []
        if not dry_run:
            record.configured(tool, {"keyring_link": str(link)})
        return link_changes
    netrc = paths.netrc_path()
    if not dry_run:
        # the file is "created" by the first Python tool that finds none; later ones inherit that
        others = [t for t in PYTHON_TOOLS if t != tool and record.state(t) == CONFIGURED]
        created = any(record.undo(t).get("created") for t in others) if others else (
            not netrc.exists())
        undo: Dict[str, Any] = {"created": created}
        if link is not None:
            undo["keyring_link"] = str(link)
        record.configured(tool, undo)
    changes = [f"{tool}: the daemon keeps a netrc line for {', '.join(sorted(served))} in {netrc}"]
    changes += [f"{tool}: {host} is left out of netrc: {why}" for host, why in skipped.items()]
    if tool == "uv":
        changes.append('uv: it asks each URL without credentials first; an index marked '
                       'authenticate = "always" (pyproject.toml or uv.toml) gets the token with '
                       'the first request, without the 401 round trip')
    return changes + link_changes


def keyring_command() -> Path:
    """``credhelper-keyring``, installed beside the interpreter that runs credhelper."""
    return Path(sys.executable).parent / "credhelper-keyring"


def runs_our_keyring(path: str) -> bool:
    """Whether ``path`` (a link on PATH, say) leads to this credhelper's ``credhelper-keyring``."""
    return os.path.realpath(path) == os.path.realpath(keyring_command())


def keyring_link_place() -> Tuple[Optional[Path], str]:
    """Where ``keyring`` should point at ``credhelper-keyring``, or None and why not.

    ``~/.local/bin`` only when it is on PATH (pip looks the command up there), and only when no
    other ``keyring`` comes first on PATH: a person's own keyring (with artifacts-keyring, say)
    stays theirs.
    """
    ours = keyring_command()
    if not ours.exists():
        return None, f"{ours} is not installed"
    place = Path(os.path.expanduser("~")) / ".local" / "bin"
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    if not any(os.path.realpath(d) == os.path.realpath(place) for d in dirs):
        return None, f"{place} is not on PATH"
    found = shutil.which("keyring")
    if found and not runs_our_keyring(found):
        return None, f"another keyring command comes first on PATH ({found})"
    return place / "keyring", ""


def _link_keyring(dry_run: bool) -> Tuple[List[str], Optional[Path]]:
    """Link ``keyring`` to ``credhelper-keyring``; the change lines and the link made (or kept)."""
    link, why_not = keyring_link_place()
    if link is None:
        return [f"pip: no keyring command linked ({why_not}); before sign-in, pip at a terminal "
                "asks `User for HOST:` (run credhelper login first)"], None
    if os.path.islink(link) and runs_our_keyring(str(link)):
        return [], link
    if os.path.lexists(link):
        return [f"pip: {link} exists and is not credhelper's; left alone"], None
    if not dry_run:
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(keyring_command())
    return [f"pip: {link} -> {keyring_command()} (pip at a terminal asks it before it prompts: "
            "a sign-in code instead of `User for HOST:`)"], link


def _unlink_keyring(undo: dict, dry_run: bool) -> List[str]:
    link = undo.get("keyring_link")
    if not link or not os.path.islink(link):
        return []
    if not os.path.basename(os.readlink(link)) == "credhelper-keyring":
        return []  # replaced since: someone else's now
    if not dry_run:
        os.unlink(link)
    return [f"pip: removed the link {link}"]


def remove_python_tool(tool: str, config: Config, dry_run: bool = False,
                       record: Optional[ToolRecord] = None) -> List[str]:
    """Undo ``configure TOOL``; the block leaves the netrc when no Python tool is left."""
    record = record or ToolRecord()
    was = record.state(tool) == CONFIGURED
    undo = record.undo(tool)
    if not dry_run and was:
        record.removed(tool)
    changes = [f"{tool}: no longer served by credhelper"] if was else []
    changes += _unlink_keyring(undo, dry_run)
    left = [t for t in PYTHON_TOOLS if t != tool and record.state(t) == CONFIGURED]
    netrc = paths.netrc_path()
    if not left and netrc_sink.has_block(netrc):
        changes.append(f"{tool}: {netrc}: removed the credhelper block")
        if not dry_run:
            netrc_sink.remove_block(netrc, delete_if_empty=bool(undo.get("created")))
    return changes
