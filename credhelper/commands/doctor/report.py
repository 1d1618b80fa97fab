"""What a doctor check reports: its states, one :class:`Check` per finding, the shared
:class:`Context`, and the human rendering.

``ok``, ``warn`` (worth knowing, not broken), ``fail`` (something a tool will trip over) or
``skip`` (could not be judged because something it needs is broken; that something is reported
on its own). A result never holds a token.
"""

import base64
import json
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ...config import Config

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
_MARK = {OK: "✓", WARN: "!", FAIL: "✗", SKIP: "-"}


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, how it stands, and the command or edit that fixes it."""

    name: str
    status: str
    message: str
    fix: Optional[str] = None


@dataclass
class Context:
    """What the checks share: the config (None when broken) and the daemon's ping reply."""

    config: Optional[Config] = None
    daemon: Optional[Dict[str, Any]] = None
    issuers: Optional[List[str]] = None


def render(results: List[Check]) -> str:
    """The human list: one line per finding, a fix line under each problem."""
    lines = []
    for result in results:
        lines.append(f"{_MARK[result.status]} {result.name}: {result.message}")
        if result.fix and result.status in (FAIL, WARN):
            lines.append(f"    fix: {result.fix}")
    failed = sum(r.status == FAIL for r in results)
    warned = sum(r.status == WARN for r in results)
    lines.append("all good" if not failed and not warned else
                 f"{failed} problem(s), {warned} warning(s)")
    return "\n".join(lines)


def jwt_expiry(token: str) -> Optional[float]:
    """The ``exp`` claim of a JWT, without verifying it; None when it is not a JWT."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


def token_problem(token: Optional[str], path: object) -> Optional[str]:
    """Why a managed block's token line cannot serve (missing, or a JWT past its ``exp``), else None."""
    if not token:
        return "missing from the credhelper block"
    expiry = jwt_expiry(token)
    if expiry is not None and expiry <= time.time():
        return f"stale (the token in {path} expired)"
    return None
