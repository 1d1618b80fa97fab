"""The MSAL token cache (refresh tokens of signed-in people), kept encrypted in the vault."""

import logging
import threading
from typing import Optional

import msal

from .errors import VaultError
from .vault import Vault

log = logging.getLogger("credhelper.msal_cache")


class Sessions:
    """One MSAL cache shared by every device-code account, loaded once, saved when it changes."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.cache = msal.SerializableTokenCache()
        self._lock = threading.Lock()
        self.problem: Optional[str] = None
        data = vault.load()
        self.problem = getattr(vault, "problem", None)
        if data:
            try:
                self.cache.deserialize(data.decode("utf-8"))
            except ValueError as exc:
                self.problem = "the token cache decrypted but did not parse; starting empty"
                log.warning("%s (%s)", self.problem, type(exc).__name__)
                self.cache = msal.SerializableTokenCache()

    def persist(self) -> None:
        """Write the cache when MSAL changed it; a failed write is reported, not fatal."""
        with self._lock:
            if not self.cache.has_state_changed:
                return
            try:
                self.vault.save(self.cache.serialize().encode("utf-8"))
            except VaultError as exc:
                self.problem = exc.message
                log.error("cannot save the token cache: %s", exc.message)
                return
            self.cache.has_state_changed = False
            self.problem = None
