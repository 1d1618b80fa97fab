"""``credhelper configure pip|uv|poetry [--remove]``: the Python tools read the daemon's netrc block.

pip (in any venv, with any keyring provider, with or without ``--no-input``), uv and poetry all
read the user's netrc and none of them needs credhelper importable, so configuring one writes no
file of the tool's own: it records the tool as configured, and the daemon keeps a netrc line for
every routed host netrc can serve (``sinks/netrc.py``). ``--remove`` marks the tool removed
first (the daemon stops writing at once) and, when no Python tool is left, takes the block out.
"""

from typing import List, Optional

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
    if record.state(tool) == CONFIGURED:
        return []
    netrc = paths.netrc_path()
    if not dry_run:
        # the file is "created" by the first Python tool that finds none; later ones inherit that
        others = [t for t in PYTHON_TOOLS if t != tool and record.state(t) == CONFIGURED]
        created = any(record.undo(t).get("created") for t in others) if others else (
            not netrc.exists())
        record.configured(tool, {"created": created})
    changes = [f"{tool}: the daemon keeps a netrc line for {', '.join(sorted(served))} in {netrc}"]
    changes += [f"{tool}: {host} is left out of netrc: {why}" for host, why in skipped.items()]
    return changes


def remove_python_tool(tool: str, config: Config, dry_run: bool = False,
                       record: Optional[ToolRecord] = None) -> List[str]:
    """Undo ``configure TOOL``; the block leaves the netrc when no Python tool is left."""
    record = record or ToolRecord()
    was = record.state(tool) == CONFIGURED
    undo = record.undo(tool)
    if not dry_run and was:
        record.removed(tool)
    changes = [f"{tool}: no longer served by credhelper"] if was else []
    left = [t for t in PYTHON_TOOLS if t != tool and record.state(t) == CONFIGURED]
    netrc = paths.netrc_path()
    if not left and netrc_sink.has_block(netrc):
        changes.append(f"{tool}: {netrc}: removed the credhelper block")
        if not dry_run:
            netrc_sink.remove_block(netrc, delete_if_empty=bool(undo.get("created")))
    return changes
