"""``credhelper configure pip|uv|poetry [--remove]``: the Python tools read the daemon's netrc block.

pip (in any venv, any provider, with or without ``--no-input``), uv and poetry all read the user's
netrc and none of them needs credhelper importable, so configuring one of them writes no file of
the tool's own: it lists the tool in the tools state, and the daemon keeps a netrc line for every
routed host that netrc can serve (see ``sinks/netrc.py``). ``--remove`` takes the tool off the
list; when no Python tool is left, the block leaves the netrc as well, and the daemon (asked to
reload, or at its next start) no longer writes it.
"""

from typing import List

from . import paths, tools_state
from .config import Config
from .errors import ConfigError
from .sinks import netrc as netrc_sink

PYTHON_TOOLS = ("pip", "uv", "poetry")


def netrc_wanted(configured: "frozenset[str]") -> bool:
    """Whether any configured tool reads the netrc block."""
    return any(tool in configured for tool in PYTHON_TOOLS)


def configure_python_tool(tool: str, config: Config, dry_run: bool = False,
                          remove: bool = False) -> List[str]:
    """Serve ``tool`` through the netrc block (or, with ``remove``, stop); one line per change."""
    if tool not in PYTHON_TOOLS:
        raise ValueError(f"not a Python tool: {tool}")
    netrc = paths.netrc_path()
    configured = tools_state.configured()
    changes: List[str] = []
    if remove:
        if tool in configured:
            changes.append(f"{tool}: no longer served by credhelper")
            if not dry_run:
                tools_state.mark(tool, False)
        left = [t for t in PYTHON_TOOLS if t in configured and t != tool]
        if not left and netrc_sink.has_block(netrc):
            changes.append(f"{tool}: {netrc}: removed the credhelper block")
            if not dry_run:
                netrc_sink.remove_block(netrc)
        return changes
    served, skipped = netrc_sink.plan(config.routes)
    if not served:
        reasons = "; ".join(f"{host}: {why}" for host, why in skipped.items()) or "no routes"
        raise ConfigError(f"no routed host can be served to {tool} through netrc ({reasons})")
    if tool not in configured:
        hosts = ", ".join(sorted(served))
        changes.append(f"{tool}: the daemon keeps {netrc} lines for {hosts} "
                       "(a managed block, 0600, fresh tokens)")
        if not dry_run:
            tools_state.mark(tool, True)
    return changes


def left_out(config: Config) -> List[str]:
    """One line per routed host netrc cannot serve, with the reason (for configure and doctor)."""
    return [f"{host} is left out: {why}" for host, why in netrc_sink.plan(config.routes)[1].items()]
