"""Doctor check: does uv send the token with its first request to each index credhelper serves?

uv asks every URL without credentials first and reads netrc only to answer the 401, unless the
index is marked ``authenticate = "always"`` (then it reads netrc before the first request) or its
URL names a user. Each request then costs a round trip more; ``authenticate = "never"`` stops the
token altogether. The check reads the index settings uv itself reads here: ``$UV_CONFIG_FILE``
when set, else the nearest ``uv.toml`` or ``pyproject.toml`` with a ``[tool.uv]`` table from the
current directory up, and the user's ``uv.toml``. It names files and URLs, never a token.
"""

import os
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlsplit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python < 3.11
    import tomli as tomllib

from ...routing import redact_url
from ...sinks import netrc as netrc_sink
from ...socketpath import home_based
from ...toolrecord import CONFIGURED, ToolRecord
from .report import FAIL, OK, WARN, Check, Context

NAME = "uv index"


def _read(path: Path) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _uv_table(path: Path, doc: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The settings uv takes from ``doc``: all of a uv.toml, the ``[tool.uv]`` of a pyproject."""
    if path.name != "pyproject.toml":
        return doc
    tool = doc.get("tool")
    table = tool.get("uv") if isinstance(tool, dict) else None
    return table if isinstance(table, dict) else None


Settings = Tuple[Path, Optional[Dict[str, Any]], Optional[str]]  # file, its TOML or None, why not


def uv_settings(start: Path) -> List[Settings]:
    """The files uv reads index settings from when run in ``start``, nearest first, each read."""
    if os.environ.get("UV_NO_CONFIG", "").lower() in ("1", "true", "yes", "on"):
        return []
    explicit = os.environ.get("UV_CONFIG_FILE")
    if explicit:
        path = Path(explicit).expanduser()
        return [(path, *_read(path))]
    found: List[Settings] = []
    for where in (start, *start.parents):
        uv_toml, pyproject = where / "uv.toml", where / "pyproject.toml"
        if uv_toml.is_file():
            found.append((uv_toml, *_read(uv_toml)))
            break
        if pyproject.is_file():
            doc, error = _read(pyproject)
            if error or (doc is not None and _uv_table(pyproject, doc) is not None):
                found.append((pyproject, doc, error))
                break
    user = Path(home_based("XDG_CONFIG_HOME", ".config")) / "uv" / "uv.toml"
    if user.is_file() and all(user != path for path, _, _ in found):
        found.append((user, *_read(user)))
    return found


def _indexes(path: Path, doc: Dict[str, Any]) -> List[Dict[str, Any]]:
    table = _uv_table(path, doc) or {}
    entries = table.get("index")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _judge(path: Path, entry: Dict[str, Any], served: Any) -> Optional[Check]:
    url = entry.get("url")
    if not isinstance(url, str) or not url.startswith("https://"):
        return None
    parts = urlsplit(url)
    if parts.hostname not in served or parts.username:
        return None  # not a host credhelper serves, or uv looks for that user's password first
    label = f"'{entry['name']}'" if isinstance(entry.get("name"), str) else "(no name)"
    where = f"{path}: index {label} ({redact_url(url)})"
    policy = entry.get("authenticate", "auto")
    if policy == "always":
        return Check(NAME, OK, f"{where} gets the token with uv's first request")
    if policy == "never":
        return Check(NAME, FAIL, f'{where} says authenticate = "never": uv sends it no token',
                     f"delete that authenticate line in {path}")
    return Check(NAME, WARN, f"{where}: uv asks each of its URLs without the token first, "
                 "then again with it from netrc (a 401 round trip per request)",
                 f'add authenticate = "always" to that index in {path}')


def check_uv_indexes(ctx: Context) -> Iterator[Check]:
    """Each index uv would use from here on a host in the netrc block: token sent up front?"""
    if ctx.config is None or ToolRecord().state("uv") != CONFIGURED:
        return
    served, _skipped = netrc_sink.plan(ctx.config.routes)
    if not served:
        return
    try:
        start = Path.cwd()
    except OSError:  # the current directory was deleted under us
        return
    for path, doc, error in uv_settings(start):
        if doc is None:
            if path.exists():
                yield Check(NAME, WARN, f"{path} cannot be read as TOML ({error}); uv will "
                            "refuse it too", f"fix {path}")
            continue
        for entry in _indexes(path, doc):
            found = _judge(path, entry, served)
            if found is not None:
                yield found
