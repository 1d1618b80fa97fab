"""Registry refresh tokens for container registries, traded for Entra tokens the way ACR does.

``POST https://HOST/oauth2/exchange`` (grant_type=access_token, service=HOST, access_token=<Entra
token>) answers a registry refresh token that docker sends as the password of the user
``00000000-0000-0000-0000-000000000000``. The daemon holds these in memory only (never on disk),
one per (registry host, account, scopes), and trades again ahead of expiry in the background, so
a warm ``docker pull`` never waits on the network.
"""

import base64
import http.client
import json
import logging
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Set, Tuple

from .clock import Clock
from .errors import AuthFailed, CredhelperError, IdpUnavailable

log = logging.getLogger("credhelper.acr")

NULL_USER = "00000000-0000-0000-0000-000000000000"
# ACR refresh tokens live three hours; a token without a readable exp is held this long
DEFAULT_LIFETIME = 3 * 3600.0
EXCHANGE_TIMEOUT = 10.0
_MAX_ANSWER = 64 * 1024

Key = Tuple[str, str, Tuple[str, ...]]          # (registry host, account, scopes)
Exchange = Callable[[str, str, Optional[str]], str]   # (host, entra token, ca_bundle) -> refresh token


@dataclass(frozen=True)
class RegistryToken:
    """A registry refresh token and when it stops working."""

    refresh_token: str = field(repr=False)
    expires_on: float
    refresh_on: float


def exchange(host: str, access_token: str, ca_bundle: Optional[str] = None) -> str:
    """Trade an Entra access token at ``https://host/oauth2/exchange`` for a refresh token."""
    body = urllib.parse.urlencode({"grant_type": "access_token", "service": host,
                                   "access_token": access_token}).encode()
    request = urllib.request.Request(
        "https://{}/oauth2/exchange".format(host), data=body, method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    try:
        with urllib.request.urlopen(request, context=context, timeout=EXCHANGE_TIMEOUT) as answer:
            data = answer.read(_MAX_ANSWER)
    except urllib.error.HTTPError as exc:
        raise AuthFailed("the registry {} refused the token exchange (HTTP {}{})".format(
            host, exc.code, _error_code(exc))) from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise IdpUnavailable("cannot reach the registry {} for the token exchange: {}".format(
            host, getattr(exc, "reason", None) or exc.__class__.__name__)) from None
    try:
        token = json.loads(data)["refresh_token"]
    except (ValueError, KeyError, TypeError):
        raise AuthFailed("the registry {} answered the token exchange without a refresh "
                         "token".format(host)) from None
    if not isinstance(token, str) or not token or any(c in token for c in "\r\n\0"):
        raise AuthFailed("the registry {} answered an unusable refresh token".format(host))
    return token


def _error_code(exc: "urllib.error.HTTPError") -> str:
    # Only the registry's error code: its message is the server's text and is not ours to echo.
    try:
        code = json.loads(exc.read(4096))["errors"][0]["code"]
    except Exception:  # noqa: BLE001 - any unreadable body just means no code to show
        return ""
    return ", {}".format(code)[:60] if isinstance(code, str) and code.isprintable() else ""


def expiry_of(token: str, now: float) -> float:
    """When a registry refresh token expires: its JWT ``exp`` if readable, else a default."""
    try:
        payload = token.split(".")[1]
        exp = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]
        if isinstance(exp, (int, float)) and not isinstance(exp, bool) and exp > now:
            return float(exp)
    except (IndexError, ValueError, KeyError, TypeError):
        pass
    return now + DEFAULT_LIFETIME


class RegistryTokens:
    """Registry refresh tokens in memory: served while fresh, traded again at half their life."""

    def __init__(self, clock: Clock, trade: Exchange = exchange) -> None:
        self.clock = clock
        self._trade = trade
        self._held: Dict[Key, RegistryToken] = {}
        self._lock = threading.Lock()
        self._flights: Dict[Key, threading.Lock] = {}
        self._renewing: Set[Key] = set()

    def __repr__(self) -> str:
        return "RegistryTokens({} held)".format(len(self._held))

    def peek(self, key: Key) -> Optional[RegistryToken]:
        """The held token when it is fresh enough to hand out without waiting, else None."""
        token = self._held.get(key)
        if token is None or self.clock.now() >= token.expires_on - 60:
            return None
        return token

    def get(self, key: Key, entra_token: Callable[[], str], ca_bundle: Optional[str]) -> RegistryToken:
        """A refresh token for ``key``; trades (once, however many ask) only when none is usable."""
        held = self.peek(key)
        if held is not None:
            if self.clock.now() >= held.refresh_on:
                self._renew_in_background(key, entra_token, ca_bundle)
            return held
        with self._flight(key):
            held = self.peek(key)
            if held is not None:
                return held
            return self._trade_now(key, entra_token, ca_bundle)

    def _flight(self, key: Key) -> threading.Lock:
        """The one lock all trades for ``key`` take (single flight)."""
        with self._lock:
            return self._flights.setdefault(key, threading.Lock())

    def _trade_now(self, key: Key, entra_token: Callable[[], str],
                   ca_bundle: Optional[str]) -> RegistryToken:
        refresh = self._trade(key[0], entra_token(), ca_bundle)
        now = self.clock.now()
        expires = expiry_of(refresh, now)
        token = RegistryToken(refresh, expires, now + (expires - now) / 2)
        with self._lock:
            self._held[key] = token
        return token

    def _renew_in_background(self, key: Key, entra_token: Callable[[], str],
                             ca_bundle: Optional[str]) -> None:
        with self._lock:
            if key in self._renewing:
                return
            self._renewing.add(key)

        def renew() -> None:
            try:
                with self._flight(key):
                    self._trade_now(key, entra_token, ca_bundle)
            except CredhelperError as exc:
                log.warning("renewing the registry token for %s failed: %s", key[0], exc.message)
            finally:
                with self._lock:
                    self._renewing.discard(key)

        threading.Thread(target=renew, daemon=True, name="acr-renew").start()

    def drop_account(self, account: str) -> None:
        """Forget every registry token of ``account`` (sign-out, config change)."""
        with self._lock:
            for key in [k for k in self._held if k[1] == account]:
                del self._held[key]

    def invalidate(self, key: Key, refresh_token: str) -> bool:
        """Drop the held token when it is the one a tool saw rejected."""
        import hmac

        with self._lock:
            held = self._held.get(key)
            if held is not None and hmac.compare_digest(held.refresh_token.encode(),
                                                        refresh_token.encode()):
                del self._held[key]
                return True
        return False

    def status(self) -> Dict[str, Any]:
        """Per registry host: account and expiry; never a token."""
        return {"{} ({})".format(k[0], k[1]): {"expires_on": int(t.expires_on)}
                for k, t in list(self._held.items())}
