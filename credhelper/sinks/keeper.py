"""Keeps every sink fresh: which token slot each registry needs, and a write after each token.

Sinks are registered in one place, :func:`open_sinks`; a new tool's file is one new module and
one line there. The keeper asks the router (through ``resolve``) which slot serves a registry,
so a config reload is seen at once.
"""

import functools
import logging
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..auth.base import Token
from ..config import Config
from ..errors import CredhelperError
from ..tokens import TokenManager
from ..toolrecord import ToolRecord
from .base import Sink

log = logging.getLogger(__name__)

Slot = Tuple[str, Tuple[str, ...]]  # (account, scopes)


def open_sinks(config: Config, record: Optional[ToolRecord] = None) -> List[Sink]:
    """Every sink the daemon keeps, each reading its own section of ``config``; with a
    ``record``, each writes only while its tool is configured there."""
    from .netrc import NetrcSink
    from .npmrc import NpmrcSink
    from .yarnrc import YarnrcSink

    sinks: List[Sink] = []
    for cls in (NpmrcSink, YarnrcSink, NetrcSink):
        gate = None
        if record is not None:
            # a file several tools read (netrc: pip, uv, poetry) is kept while any is configured
            tools = getattr(cls, "tools", (cls.name,))
            gate = functools.partial(_any_enabled, record, tools, cls.default_on)
        sinks.append(cls.from_config(config, gate))
    return sinks


def _any_enabled(record: ToolRecord, tools: Sequence[str], default: bool) -> bool:
    return any(record.enabled(tool, default) for tool in tools)


class SinkKeeper:
    """Writes each sink's registries' tokens whenever their slot gets a new token."""

    def __init__(self, sinks: Sequence[Sink], tokens: TokenManager, wake: Callable[[], None],
                 resolve: Callable[[str], Any]) -> None:
        self.sinks = list(sinks)
        self._tokens = tokens
        self._wake = wake
        self._resolve = resolve  # registry URL -> Route, through the current router

    def _slots(self, sink: Sink) -> Dict[str, Slot]:
        slots = {}
        for registry in sink.registries:
            route = self._resolve(registry)
            slots[registry] = (route.account, route.scopes)
        return slots

    def any_registries(self) -> bool:
        """True when some sink has a registry to keep."""
        return any(sink.registries for sink in self.sinks)

    def on_token(self, account: str, scopes: Tuple[str, ...], token: Token) -> None:
        """A slot got a new token: write it into every file whose registries it serves."""
        for sink in self.sinks:
            registries = [r for r, slot in self._slots(sink).items() if slot == (account, scopes)]
            if not registries:
                continue
            try:
                sink.write({registry: token.access_token for registry in registries})
            except (OSError, ValueError, CredhelperError) as exc:
                log.warning("cannot update the %s config: %s", sink.name, exc)

    def start(self) -> None:
        """Watch the files that have registries and fill them."""
        if not self.any_registries():
            return
        for sink in self.sinks:
            if sink.registries and sink.enabled():
                sink.watch()
        self.warm()

    def tools_changed(self) -> None:
        """The tool record changed: a removed tool's file is let go, a configured one filled."""
        for sink in self.sinks:
            if not sink.enabled():
                sink.stop()
                sink.remove()
        self.start()

    def warm(self) -> None:
        """Keep the sinks' slots warm for good and fill the files from the ones already held."""
        if not self.any_registries():
            return
        for account, scopes in self._all_slots():
            self._tokens.pin(account, scopes)
        self._wake()
        # A registry added by a reload may share a slot that already holds a fresh token: no
        # acquisition (so no on_token) would come for it until the next refresh.
        threading.Thread(target=self._fill, daemon=True, name="sink-fill").start()

    def _all_slots(self) -> List[Slot]:
        return sorted({slot for sink in self.sinks for slot in self._slots(sink).values()})

    def _fill(self) -> None:
        for account, scopes in self._all_slots():
            try:
                self.on_token(account, scopes, self._tokens.get(account, scopes))
            except CredhelperError:
                pass  # the pinned slot retries in the background and calls on_token itself

    def reconfigure(self, config: Config) -> None:
        """Hand each sink its registries from a reloaded config (call with the new router in place)."""
        for sink in self.sinks:
            sink.reconfigure(config)

    def forget_account(self, account: str) -> None:
        """A sign-out: that account's tokens leave every file."""
        for sink in self.sinks:
            sink.forget([r for r, (owner, _) in self._slots(sink).items() if owner == account])

    def status(self) -> Dict[str, Dict[str, Any]]:
        """Per sink: its file and registries (never a token)."""
        return {sink.name: {"file": str(sink.path), "registries": list(sink.registries),
                            "kept": sink.enabled()}
                for sink in self.sinks}

    def stop(self) -> None:
        """Stop watching every file."""
        for sink in self.sinks:
            sink.stop()

