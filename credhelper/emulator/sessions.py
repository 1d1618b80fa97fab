"""Signed-in users: device codes waiting for a person, and rotating refresh tokens.

A refresh token is good for one use: each redemption returns a new one and retires the old, and
revoking a user retires all of theirs (AADSTS50173).
"""

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .aad import OAuthError

_USER_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass
class DeviceCode:
    """One device-code sign-in in progress."""

    device_code: str = field(repr=False)
    user_code: str
    client_id: str
    tenant: str
    scopes: Tuple[str, ...]
    expires_at: float
    interval: int
    state: str = "pending"            # pending | approved | denied | redeemed
    user: Optional[str] = None
    last_poll: float = 0.0


@dataclass
class Grant:
    """What a refresh token stands for."""

    client_id: str
    tenant: str
    user: str
    revoked: bool = False


class Sessions:
    """Device codes and refresh tokens; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: Dict[str, DeviceCode] = {}          # by device_code
        self._refresh: Dict[str, Grant] = {}
        self.device_lifetime = 900
        self.device_interval = 1   # Entra says 5; 1 keeps MSAL's polling tests fast

    def start(self, client_id: str, tenant: str, scopes: Tuple[str, ...]) -> DeviceCode:
        """Begin a device-code sign-in."""
        with self._lock:
            user_code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(9))
            code = DeviceCode(secrets.token_urlsafe(48), user_code, client_id, tenant, scopes,
                              time.time() + self.device_lifetime, self.device_interval)
            self._codes[code.device_code] = code
            return code

    def _by_user_code(self, user_code: Optional[str]) -> DeviceCode:
        pending = [c for c in self._codes.values() if c.state == "pending"]
        if user_code is None:
            if not pending:
                raise KeyError("no device code is waiting for approval")
            return pending[-1]
        for code in self._codes.values():
            if code.user_code == user_code.strip().upper():
                return code
        raise KeyError("unknown user code {!r}".format(user_code))

    def approve(self, user_code: Optional[str], user: str) -> str:
        """A person signs in as ``user`` and approves; returns the user code approved."""
        with self._lock:
            code = self._by_user_code(user_code)
            code.state, code.user = "approved", user
            return code.user_code

    def deny(self, user_code: Optional[str]) -> str:
        """A person declines the sign-in."""
        with self._lock:
            code = self._by_user_code(user_code)
            code.state = "denied"
            return code.user_code

    def expire(self, user_code: Optional[str]) -> str:
        """Make a device code expire now (tests do not wait 15 minutes)."""
        with self._lock:
            code = self._by_user_code(user_code)
            code.expires_at = 0
            return code.user_code

    def state(self, user_code: str) -> Optional[str]:
        """``pending``, ``approved``, ``denied``, ``redeemed`` or ``expired``; None when unknown."""
        with self._lock:
            for code in self._codes.values():
                if code.user_code == user_code.strip().upper():
                    if code.state == "pending" and time.time() >= code.expires_at:
                        return "expired"
                    return code.state
            return None

    def pending(self) -> List[str]:
        """User codes waiting for a person, oldest first."""
        with self._lock:
            return [c.user_code for c in self._codes.values() if c.state == "pending"]

    def redeem_device_code(self, device_code: str, client_id: str) -> DeviceCode:
        """The approved sign-in behind ``device_code``, or the RFC 8628 error to poll on."""
        with self._lock:
            code = self._codes.get(device_code)
            if code is None or code.client_id != client_id or code.state == "redeemed":
                raise OAuthError("invalid_grant", 70000, "The provided value for the input "
                                 "parameter 'device_code' is not valid.")
            now = time.time()
            if now >= code.expires_at:
                raise OAuthError("expired_token", 70020, "The provided value for the input "
                                 "parameter 'device_code' is not valid. This device code has "
                                 "expired.")
            if code.state == "denied":
                raise OAuthError("access_denied", 65004, "User declined to consent to access "
                                 "the app.")
            too_soon = now - code.last_poll < code.interval * 0.8
            code.last_poll = now
            if code.state == "pending":
                if too_soon:
                    raise OAuthError("slow_down", 70016, "OAuth 2.0 device flow error. "
                                     "Polling too fast.")
                raise OAuthError("authorization_pending", 70016, "OAuth 2.0 device flow error. "
                                 "Authorization is pending. Continue polling.")
            code.state = "redeemed"
            return code

    def issue_refresh_token(self, client_id: str, tenant: str, user: str) -> str:
        """A new refresh token for ``user``."""
        token = "0.emu." + secrets.token_urlsafe(48)
        with self._lock:
            self._refresh[token] = Grant(client_id, tenant, user)
        return token

    def redeem_refresh_token(self, token: str, client_id: str) -> Grant:
        """The grant behind a refresh token, retiring the token (rotation)."""
        with self._lock:
            grant = self._refresh.get(token)
            if grant is None or grant.client_id != client_id:
                raise OAuthError("invalid_grant", 70008, "The provided authorization code or "
                                 "refresh token has expired due to inactivity or was already "
                                 "used.")
            if grant.revoked:
                raise OAuthError("invalid_grant", 50173, "The provided grant has expired due to "
                                 "it being revoked, a fresh auth token is needed. The user might "
                                 "have changed or reset their password.")
            del self._refresh[token]
            return grant

    def revoke(self, user: str) -> int:
        """Revoke every refresh token of ``user``; returns how many were live."""
        with self._lock:
            grants = [g for g in self._refresh.values() if g.user == user and not g.revoked]
            for grant in grants:
                grant.revoked = True
            return len(grants)
