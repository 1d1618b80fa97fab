"""Access tokens kept across a daemon restart, encrypted in the state directory (DESIGN §6.5).

A restarted daemon that held nothing would ask the identity provider for every slot at once;
across a fleet restarted together that is one stampede. So every held token is written, with
the refresh time planned when it arrived, to ``tokens.bin``: the same vault format and key as the
MSAL cache (AES-256-GCM, atomic replace; unreadable means moved aside, never fatal). Each entry
names a fingerprint of its account's config: a token is only adopted by the same account.
"""

import hashlib
import json
import logging
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from .auth.base import Token
from .config import Account
from .errors import VaultError
from .tokens import Kept
from .vault import Vault

log = logging.getLogger(__name__)

FILE_NAME = "tokens.bin"
FORMAT = 1


def fingerprint(account: Account) -> str:
    """A digest of an account's settings; a changed account does not adopt the old tokens."""
    return hashlib.sha256(repr(account).encode("utf-8")).hexdigest()[:32]


class KeptTokens:
    """Load and save the kept tokens; a failure is logged and costs one IdP request, no more."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self._lock = threading.Lock()

    def load(self, accounts: Mapping[str, Account]) -> List[Kept]:
        """The kept tokens of accounts configured as they were when the token was kept."""
        try:
            data = self.vault.load()
        except VaultError as exc:
            log.warning("kept tokens not read: %s", exc.message)
            return []
        if not data:
            return []
        try:
            entries = _parse(data, accounts)
        except (ValueError, TypeError, KeyError) as exc:  # never the text: it holds tokens
            log.warning("kept tokens decrypted but did not parse (%s); starting empty",
                        type(exc).__name__)
            return []
        return entries

    def save(self, snapshot: Callable[[], Sequence[Kept]], accounts: Mapping[str, Account]) -> None:
        """Write what ``snapshot`` returns, taken under the lock so the last write is the newest."""
        with self._lock:
            entries = snapshot()
            body = {"format": FORMAT, "slots": [
                {"account": k.account, "config": fingerprint(accounts[k.account]),
                 "scopes": list(k.scopes), "access_token": k.token.access_token,
                 "expires_on": k.token.expires_on, "refresh_on": k.token.refresh_on,
                 "planned": k.planned}
                for k in entries if k.account in accounts]}
            try:
                self.vault.save(json.dumps(body).encode("utf-8"))
            except VaultError as exc:
                log.error("cannot keep tokens for a restart: %s", exc.message)


def _parse(data: bytes, accounts: Mapping[str, Account]) -> List[Kept]:
    body: Dict[str, Any] = json.loads(data.decode("utf-8"))
    if body.get("format") != FORMAT:
        raise ValueError("unknown format")
    kept = []
    for slot in body["slots"]:
        account: Optional[Account] = accounts.get(slot["account"])
        if account is None or slot["config"] != fingerprint(account):
            continue
        refresh_on = slot["refresh_on"]
        token = Token(str(slot["access_token"]), float(slot["expires_on"]),
                      None if refresh_on is None else float(refresh_on))
        kept.append(Kept(slot["account"], tuple(str(s) for s in slot["scopes"]), token,
                         float(slot["planned"])))
    return kept
