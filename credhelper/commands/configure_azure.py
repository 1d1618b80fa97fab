"""``credhelper configure azure``: new shells pick up the daemon's Azure SDK endpoint.

The daemon writes ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` (random per daemon start) into a
0600 file beside its socket. This puts a managed block into ``~/.bashrc`` (and ``~/.zshrc`` when
there is one) that sources that file when it exists, so ``DefaultAzureCredential`` in any new
shell finds the endpoint; ``--remove`` takes the block out again, byte for byte.
"""

import shlex
from pathlib import Path
from typing import List

from .. import paths
from ..azure_identity import ENV_FILE
from ..config import Config
from ..errors import ConfigError
from ..sinks.npmrc import BEGIN, END, outside_block
from .configure import _atomic_write, _lines


def shell_files() -> List[Path]:
    """The rc files to edit: ``~/.bashrc`` always, ``~/.zshrc`` when it exists."""
    home = Path.home()
    return [home / ".bashrc"] + [p for p in (home / ".zshrc",) if p.exists()]


def block() -> List[str]:
    """The managed block's lines."""
    env = shlex.quote(str(paths.socket_path().parent / ENV_FILE))
    return [BEGIN + "\n",
            "# Azure SDKs get tokens from credhelper's managed-identity endpoint "
            "(credhelper configure azure)\n",
            f"[ -r {env} ] && . {env}\n",
            END + "\n"]


def configure_azure(config: Config, dry_run: bool = False, remove: bool = False) -> List[str]:
    """Add (or with ``remove`` take out) the block that sources the endpoint's env file."""
    if config.azure is None and not remove:
        raise ConfigError("no [azure] table in the config: list the scopes the Azure SDKs may "
                          "get (and the account) first")
    changes: List[str] = []
    for path in shell_files():
        lines = _lines(path)
        outside = outside_block(lines, path)
        kept = [line for line, keep in zip(lines, outside) if keep]
        if remove:
            if len(kept) == len(lines):
                continue
            wanted = kept
        else:
            if [line for line, keep in zip(lines, outside) if not keep] == block():
                continue
            if kept and not kept[-1].endswith("\n"):
                kept[-1] += "\n"
            wanted = kept + block()
        changes.append(f"azure: {path}: " + ("removed the credhelper block" if remove else
                                             "sources the daemon's IDENTITY_ENDPOINT/HEADER"))
        if not dry_run:
            mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
            _atomic_write(path, "".join(wanted), mode)
    return changes
