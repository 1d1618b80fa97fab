"""The one seam every sink sits behind: a tool's own file that holds tokens for its registries.

A sink owns one file format (key, block parse, block render) and one section of the config.
The daemon never talks to a sink directly: :class:`~credhelper.sinks.keeper.SinkKeeper` tells
it which tokens changed.
"""

import threading
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Tuple

from ..config import Config

try:
    from typing import Protocol
except ImportError:  # pragma: no cover - Python < 3.8 is not supported anyway
    Protocol = object  # type: ignore[assignment]


class Sink(Protocol):
    """A tool's user-level file kept fresh with tokens, inside a managed block."""

    name: str   # the tool, and the key of this sink in ``status``
    path: Path  # the file it keeps

    @property
    def registries(self) -> Tuple[str, ...]:
        """The registry URLs this sink wants tokens for (from the config)."""

    def enabled(self) -> bool:
        """Whether the file is ours to keep: its tool is configured (or on by default)."""

    def reconfigure(self, config: Config) -> None:
        """Take this sink's registries from a (re)loaded config; dropped ones leave the file."""

    def write(self, tokens: Mapping[str, str]) -> None:
        """Render ``tokens`` (registry URL -> token) into the file; other registries keep theirs."""

    def forget(self, registries: Iterable[str]) -> None:
        """Drop these registries' tokens (a sign-out); none left means no block."""

    def remove(self) -> None:
        """Take the managed block out of the file."""

    def watch(self) -> None:
        """Put the block back whenever something else rewrites the file."""

    def stop(self) -> None:
        """Stop watching."""


class HeldTokens:
    """What the sinks share that keep their tokens in a dict under a lock, one key per entry.

    A subclass says which key a registry's token sits under (``_key``), how the block is written
    (``_sync``) and how it is taken out (``remove``); ``forget`` is then the same for all.
    """

    _lock: threading.Lock
    _tokens: Dict[str, str]

    def _key(self, registry: str) -> Optional[str]:
        raise NotImplementedError

    def _sync(self) -> None:
        raise NotImplementedError

    def remove(self) -> None:
        """Take the managed block out of the file."""
        raise NotImplementedError

    def forget(self, registries: Iterable[str]) -> None:
        """Drop these registries' tokens (a sign-out); no token left means no block."""
        with self._lock:
            for url in registries:
                key = self._key(url)
                if key is not None:
                    self._tokens.pop(key, None)
            remaining = bool(self._tokens)
            if remaining:
                self._sync()
        if not remaining:
            self.remove()
