"""Which tools ``credhelper configure`` has set up, kept where the daemon finds it after a restart.

``configure TOOL`` adds the tool and ``configure TOOL --remove`` takes it out; the daemon keeps a
tool's file (the netrc block for pip, uv and poetry) only while the tool is listed here. The file
is ``tools.json`` in the state directory (0600, written atomically); a missing or unreadable one
means no tool, so a damaged file stops the daemon writing tokens rather than the reverse.
"""

import json
import logging
from pathlib import Path
from typing import FrozenSet, Optional

from . import paths
from .atomic import write_atomic

FILE = "tools.json"
log = logging.getLogger(__name__)


def _file(state_dir: Optional[Path]) -> Path:
    return (state_dir or paths.state_dir()) / FILE


def configured(state_dir: Optional[Path] = None) -> FrozenSet[str]:
    """The tools configure has set up (and not removed since)."""
    path = _file(state_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return frozenset()
    except (OSError, ValueError) as exc:
        log.warning("%s is unreadable (%s): acting as if no tool were configured", path,
                    type(exc).__name__)
        return frozenset()
    tools = data.get("configured") if isinstance(data, dict) else None
    if not isinstance(tools, list):
        return frozenset()
    return frozenset(t for t in tools if isinstance(t, str))


def mark(tool: str, on: bool, state_dir: Optional[Path] = None) -> bool:
    """Add (``on``) or remove ``tool``; whether the list changed."""
    current = configured(state_dir)
    wanted = current | {tool} if on else current - {tool}
    if wanted == current:
        return False
    directory = paths.ensure_private_dir(state_dir or paths.state_dir())
    text = json.dumps({"configured": sorted(wanted)}, indent=1) + "\n"
    write_atomic(directory / FILE, text.encode("utf-8"), 0o600)
    return True
