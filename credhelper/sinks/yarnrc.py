"""Keeps an ``npmRegistries`` block fresh in yarn berry's user-level ``~/.yarnrc.yml``.

Yarn 2+ never reads ``.npmrc``; it takes a registry's token from ``npmRegistries`` in its own rc
files. The block follows the npm block's rules (same markers, rest of the file untouched, 0600,
rewritten after every refresh, restored when something rewrites the file) and adds
``npmAlwaysAuth``, without which berry asks for unscoped packages anonymously.

YAML allows a key once per mapping, so a file that has its own top-level ``npmRegistries`` cannot
take ours beside it: the sink then writes nothing and says so (doctor says it too).
"""

import os
import re
from pathlib import Path
from typing import Callable, List, Optional

from ..config import Config
from ..errors import ConfigError
from .npmrc import BEGIN, END, NpmrcSink

_OWN_REGISTRIES = re.compile(r"^npmRegistries\s*:", re.M)
_TOKEN_VALUE = re.compile(r"""^\s+npmAuthToken:\s*["']?([^"'\s]+)["']?\s*$""")
# Entra tokens are JWTs: base64url and dots. Anything else would need YAML escaping; refuse it.
_YAML_SAFE = re.compile(r"[A-Za-z0-9._~+/=-]+\Z")


def yarnrc_path() -> Path:
    """The user-level berry rc: ``~/$YARN_RC_FILENAME``, else ``~/.yarnrc.yml``."""
    home = os.environ.get("HOME") or os.path.expanduser("~")
    name = os.environ.get("YARN_RC_FILENAME") or ".yarnrc.yml"
    return Path(os.path.abspath(os.path.join(home, os.path.basename(name))))


def has_own_registries(text: str) -> bool:
    """Whether ``text`` (the file without our block) has its own top-level ``npmRegistries``."""
    return bool(_OWN_REGISTRIES.search(text))


class YarnrcSink(NpmrcSink):
    """The managed block of one ``.yarnrc.yml``, for the configured npm registries."""

    name = "yarn"
    default_on = False  # a file of its own: only after `credhelper configure yarn`

    @classmethod
    def from_config(cls, config: Config, gate: Optional[Callable[[], bool]] = None) -> "YarnrcSink":
        """The sink for ``[npm] registries`` in the daemon's user's ``~/.yarnrc.yml``."""
        return cls(yarnrc_path(), config.npm_registries, gate)

    def _block_lines(self) -> List[str]:
        lines = ["npmRegistries:"]
        for key in self._keys:
            token = self._tokens.get(key)
            if token is None:
                continue
            if not _YAML_SAFE.match(token):
                raise ValueError("refusing to write a token with characters YAML would need escaped")
            # berry compares registries without the trailing slash; the key has no quotes in it
            lines += [f'  "{key.rstrip("/")}":', "    npmAlwaysAuth: true",
                      f'    npmAuthToken: "{token}"']
        return lines

    def _check(self, text: str) -> None:
        if has_own_registries(text):
            raise ConfigError(f"{self.path} has its own npmRegistries; credhelper cannot add its "
                              "block beside it (move those entries into a project .yarnrc.yml)")

    def _stray_lines(self) -> List[str]:
        return []  # yarn's rewrite moves whole sections, not lines: see _clean

    def _clean(self, text: str) -> str:
        """Drop a top-level ``npmRegistries`` outside the markers that holds a token we wrote:
        ``yarn config set -H`` re-serialises the file, dropping comments (so our markers)."""
        recent = {token for tokens in self._recent.values() for token in tokens}
        if not recent:
            return text
        lines = text.splitlines(keepends=True)
        out: List[str] = []
        index, inside = 0, False
        while index < len(lines):
            line = lines[index]
            inside = (inside or line.startswith(BEGIN)) and not line.startswith(END)
            if inside or not _OWN_REGISTRIES.match(line):
                out.append(line)
                index += 1
                continue
            end = index + 1
            while end < len(lines) and (lines[end][:1] in (" ", "\t") or not lines[end].strip()):
                end += 1
            section = lines[index:end]
            values = {m.group(1) for m in map(_TOKEN_VALUE.match, section) if m}
            if not (values and values <= recent):
                out.extend(section)  # someone's own registries: _check refuses beside them
            index = end
        return "".join(out)
