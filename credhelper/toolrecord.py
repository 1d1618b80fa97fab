"""Which tools ``credhelper configure`` set up and how to put each back: ``tools.json`` in the state dir.

``configure TOOL`` calls :meth:`ToolRecord.configured` with whatever it needs to undo its change
(the values it replaced); ``configure TOOL --remove`` calls :meth:`ToolRecord.removed`, which hands
that back and marks the tool removed. The daemon asks :meth:`ToolRecord.enabled` before it writes a
tool's file, so a removed tool stays untouched until it is configured again, across restarts too.

A tool never recorded is in its default state (the npm block follows ``[npm] registries``, as it
always did; yarn's file only after ``configure yarn``). The file holds no secret: tool names,
config keys and the values they had before.
"""

import json
import logging
import threading
from pathlib import Path
from typing import Any, Dict, Optional

from . import paths
from .atomic import write_atomic

NAME = "tools.json"
CONFIGURED, REMOVED = "configured", "removed"
log = logging.getLogger(__name__)


class ToolRecord:
    """The record in one state dir; every call reads the file afresh (it is tiny, and two
    processes, the CLI and the daemon, share it)."""

    def __init__(self, state_dir: Optional[Path] = None) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else paths.state_dir()
        self.path = self.state_dir / NAME
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ToolRecord({str(self.path)!r})"

    def _load(self) -> Dict[str, Dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            tools = data["tools"]
            if not isinstance(tools, dict) or not all(isinstance(v, dict) for v in tools.values()):
                raise ValueError("'tools' is not a table of tables")
            return tools
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # A broken record must not stop the daemon: every tool falls back to its default.
            log.warning("ignoring %s: %s", self.path, exc)
            return {}

    def _save(self, tools: Dict[str, Dict[str, Any]]) -> None:
        paths.ensure_private_dir(self.state_dir)
        text = json.dumps({"version": 1, "tools": tools}, indent=2, sort_keys=True) + "\n"
        write_atomic(self.path, text.encode("utf-8"), 0o600)

    def state(self, tool: str) -> Optional[str]:
        """``"configured"``, ``"removed"`` or None (never configured through this record)."""
        return self._load().get(tool, {}).get("state")

    def enabled(self, tool: str, default: bool) -> bool:
        """Whether the daemon should keep ``tool``'s file: the recorded state, else ``default``."""
        state = self.state(tool)
        return default if state is None else state == CONFIGURED

    def configured(self, tool: str, undo: Optional[Dict[str, Any]] = None) -> None:
        """Record ``tool`` as configured; ``undo`` entries already held keep their first value
        (a second ``configure`` must not forget what was there before the first)."""
        with self._lock:
            tools = self._load()
            entry = tools.get(tool, {})
            kept = entry.get("undo", {}) if entry.get("state") == CONFIGURED else {}
            merged = dict(undo or {})
            merged.update(kept)
            tools[tool] = {"state": CONFIGURED, "undo": merged}
            self._save(tools)

    def undo(self, tool: str) -> Dict[str, Any]:
        """What ``configure`` recorded for putting ``tool`` back (empty when nothing)."""
        entry = self._load().get(tool, {})
        return dict(entry.get("undo", {})) if entry.get("state") == CONFIGURED else {}

    def removed(self, tool: str) -> Dict[str, Any]:
        """Record ``tool`` as removed; returns the undo data it had."""
        with self._lock:
            tools = self._load()
            entry = tools.get(tool, {})
            undo = entry.get("undo", {}) if entry.get("state") == CONFIGURED else {}
            tools[tool] = {"state": REMOVED}
            self._save(tools)
            return dict(undo)
