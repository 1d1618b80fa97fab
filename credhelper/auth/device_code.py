"""A person's tokens: device-code sign-in once, then refresh tokens from the persistent cache.

The refresh token lives in the daemon's ``SerializableTokenCache`` (the vault persists it); the
access tokens MSAL also stores there are removed after each acquire, because we hold tokens in
memory ourselves and the vault should carry no more than it must. Sign-in polls in a daemon
thread, so ``login_wait`` can be called again and again with a short timeout and a stuck poll
never holds up shutdown.
"""

import threading
import time
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import msal
from msal.authority import canonicalize

from ..errors import (SIGN_IN_ENDINGS, AuthFailed, CredhelperError, IdpUnavailable, LoginFailed,
                      Throttled, sign_in_ending)
from .base import Token
from .http import HttpClient, NoStore
from .msal_glue import authority_options, describe_error, not_signed_in, token_from_result

if TYPE_CHECKING:
    from ..config import Account

_RT = msal.TokenCache.CredentialType.REFRESH_TOKEN
_AT = msal.TokenCache.CredentialType.ACCESS_TOKEN
# invalid_grant with one of these suberrors asks the person for more (MFA, consent) for these
# scopes: the refresh token may still serve others, so MSAL keeps it and so do we.
_INTERACTION_SUBERRORS = frozenset({"basic_action", "additional_action", "message_only",
                                    "consent_required"})


class _Login:
    """One device-code sign-in in flight; the first outcome written wins."""

    def __init__(self, flow: Dict[str, Any], known: Set[str]) -> None:
        self.flow = flow
        self.known = known  # home account ids signed in before this sign-in began
        self.cancel = threading.Event()
        self.finished = threading.Event()
        self.outcome: Dict[str, Any] = {"state": "pending"}
        self._lock = threading.Lock()

    def finish(self, outcome: Dict[str, Any]) -> None:
        with self._lock:
            if not self.finished.is_set():
                self.outcome = outcome
                self.finished.set()

    def stopped(self, flow: Dict[str, Any]) -> bool:
        return self.cancel.is_set() or flow.get("expires_at", 0) < time.time()


def _failed(account: str, error: str, message: Optional[str] = None) -> Dict[str, Any]:
    return {"state": "failed", "error": error,
            "message": message or sign_in_ending(error, account) or f"sign-in failed: {error}"}


class DeviceCodeSource:
    """Device-code sign-in and refresh-token acquisition for one account."""

    def __init__(self, account: "Account", cache: msal.SerializableTokenCache,
                 http_client: HttpClient) -> None:
        self.account = account
        self._cache = cache
        self._http = http_client
        self._app: Optional[msal.PublicClientApplication] = None
        self._lock = threading.Lock()
        self._login: Optional[_Login] = None
        self._home_account_id: Optional[str] = None  # who signed in through us, this run

    def login_start(self, scopes: Sequence[str] = ()) -> Dict[str, Any]:
        """Begin a sign-in: ``{"user_code", "verification_uri", "expires_at", "message"}``."""
        self.login_cancel()
        app = self._application()
        try:
            flow = app.initiate_device_flow(scopes=list(scopes))
        except ValueError as exc:
            raise LoginFailed(f"account '{self.account.name}': cannot start sign-in "
                              f"({type(exc).__name__})") from exc
        if "user_code" not in flow:
            raise LoginFailed(f"account '{self.account.name}': cannot start sign-in: "
                              f"{describe_error(flow)}")
        with self._lock:
            known = {a["home_account_id"] for a in self._accounts(app)}
        login = _Login(flow, known)
        self._login = login
        threading.Thread(target=self._poll, args=(app, login), daemon=True,
                         name=f"credhelper-login-{self.account.name}").start()
        return {"user_code": flow["user_code"], "verification_uri": flow.get("verification_uri"),
                "expires_at": flow["expires_at"], "message": flow.get("message")}

    def login_wait(self, timeout: float) -> Dict[str, Any]:
        """Wait up to ``timeout`` s: ``{"state": "pending"|"done"|"failed", "user", "error"}``."""
        login = self._login
        if login is None:
            return _failed(self.account.name, "not_started",
                           "no sign-in in progress: run credhelper login")
        login.finished.wait(max(timeout, 0.0))
        return dict(login.outcome)

    def login_cancel(self) -> None:
        """Abandon the sign-in in flight, if any (its poll stops within a second)."""
        login = self._login
        if login is not None:
            login.cancel.set()
            login.finish(_failed(self.account.name, "cancelled"))

    def acquire(self, scopes: Tuple[str, ...], now: float) -> Token:
        """A new token for ``scopes`` from the refresh token; NotSignedIn when there is none."""
        with self._lock:
            app = self._application()
            account = self._signed_in_account(app)
            if account is None:
                raise not_signed_in(self.account)
            try:
                result = app.acquire_token_silent_with_error(
                    list(scopes), account, force_refresh=True)
            except ValueError as exc:
                raise AuthFailed(f"account '{self.account.name}': unexpected answer from the "
                                 f"identity provider ({type(exc).__name__})") from exc
            finally:
                self._drop_access_tokens(account["home_account_id"])
            if _dead_grant(result):
                # Revoked, expired or already redeemed: keeping it would only let status claim
                # a sign-in that can no longer work.
                app.remove_account(account)
                if self._home_account_id == account["home_account_id"]:
                    self._home_account_id = None
        return token_from_result(self.account, result, now, user_flow=True)

    def signed_in(self) -> Optional[Dict[str, Any]]:
        """``{"username", "last_used"}`` of the signed-in user, or None; read from the cache alone.

        ``status`` asks this, so it neither talks to the identity provider (one that is down must
        not hide everything else) nor waits for ``_lock``, which a refresh holds on the network.
        """
        app = self._app
        realm = _realm(app) if app is not None else _authority_realm(self.account)
        cached = self._cache.search(msal.TokenCache.CredentialType.ACCOUNT)
        account = self._pick(self._mine(cached, realm))
        if account is None:
            return None
        return {"username": account.get("username"),
                "last_used": self._rt_time(account["home_account_id"])}

    def logout(self) -> bool:
        """Forget the signed-in user (refresh token included); False when nobody was."""
        self.login_cancel()
        with self._lock:
            app = self._application()
            mine = self._accounts(app)
            for account in mine:
                app.remove_account(account)
            self._home_account_id = None
            return bool(mine)

    def close(self) -> None:
        """Stop any sign-in and release connections."""
        self.login_cancel()
        self._http.close()

    def _poll(self, app: msal.PublicClientApplication, login: _Login) -> None:
        try:
            while not login.finished.is_set():
                try:
                    result = app.acquire_token_by_device_flow(
                        login.flow, exit_condition=login.stopped)
                except (IdpUnavailable, Throttled) as exc:  # passing trouble: poll on until expiry
                    wait = exc.retry_after or login.flow.get("interval", 5)
                    if login.cancel.wait(wait) or login.stopped(login.flow):
                        ending = "cancelled" if login.cancel.is_set() else "expired_token"
                        login.finish(_failed(self.account.name, ending))
                    continue
                self._settle(app, login, result)
        except CredhelperError as exc:
            login.finish(_failed(self.account.name, exc.code, exc.message))
        except Exception as exc:  # a crashed poll must still end the wait with a reason
            login.finish(_failed(self.account.name, "error",
                                 f"sign-in failed ({type(exc).__name__})"))

    def _settle(self, app: msal.PublicClientApplication, login: _Login,
                result: Dict[str, Any]) -> None:
        if "access_token" in result:
            claims = result.get("id_token_claims") or {}
            user = claims.get("preferred_username") or claims.get("upn")
            with self._lock:
                for account in app.get_accounts(username=user) if user else []:
                    self._drop_access_tokens(account["home_account_id"])
                    if login.cancel.is_set():
                        # MSAL sleeps between polls without looking at the exit condition, so
                        # one poll may follow a Ctrl-C and find the code approved: it must not
                        # sign anyone in who was not signed in before.
                        if account["home_account_id"] not in login.known:
                            app.remove_account(account)
                    else:
                        self._home_account_id = account["home_account_id"]
            login.finish(_failed(self.account.name, "cancelled") if login.cancel.is_set()
                         else {"state": "done", "user": user})
            return
        error = str(result.get("error") or "error")
        if error in ("authorization_pending", "slow_down"):
            error = "cancelled" if login.cancel.is_set() else "expired_token"
        known = error in SIGN_IN_ENDINGS
        login.finish(_failed(self.account.name, error if known else "login_failed",
                             None if known else f"sign-in failed: {describe_error(result)}"))

    def _application(self) -> msal.PublicClientApplication:
        if self._app is None:
            try:
                self._app = msal.PublicClientApplication(
                    self.account.client_id, http_client=self._http, http_cache=NoStore(),
                    token_cache=self._cache, **authority_options(self.account))
            except ValueError as exc:
                where = self.account.oidc_authority or self.account.authority
                raise AuthFailed(f"account '{self.account.name}': cannot use authority "
                                 f"{where} (OpenID discovery failed)") from exc
        return self._app

    def _accounts(self, app: msal.PublicClientApplication) -> List[Dict[str, Any]]:
        """Cached accounts of our tenant holding a refresh token of our client id.

        The cache is shared: two accounts may use one public client id (a well-known one, say)
        in two tenants, and MSAL's ``get_accounts`` matches the host only. The realm MSAL
        stored with an account is the tenant segment of the token endpoint it signed in at.
        """
        return self._mine(app.get_accounts(), _realm(app))

    def _mine(self, accounts: Iterable[Dict[str, Any]], realm: Optional[str]
              ) -> List[Dict[str, Any]]:
        return [a for a in accounts if a.get("realm") == realm and list(
            self._cache.search(_RT, query={"client_id": self.account.client_id,
                                           "home_account_id": a["home_account_id"]}))]

    def _signed_in_account(self, app: msal.PublicClientApplication) -> Optional[Dict[str, Any]]:
        return self._pick(self._accounts(app))

    def _pick(self, mine: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
        for account in mine:
            if account["home_account_id"] == self._home_account_id:
                return account
        # Several users of one client id: the most recently refreshed one is the likely intent.
        mine.sort(key=lambda a: self._rt_time(a["home_account_id"]) or 0.0, reverse=True)
        return mine[0] if mine else None

    def _rt_time(self, home_account_id: str) -> Optional[float]:
        times = [float(rt["last_modification_time"]) for rt in self._cache.search(
            _RT, query={"client_id": self.account.client_id, "home_account_id": home_account_id})
            if str(rt.get("last_modification_time", "")).isdigit()]
        return max(times) if times else None

    def _drop_access_tokens(self, home_account_id: str) -> None:
        for at in list(self._cache.search(_AT, query={
                "client_id": self.account.client_id, "home_account_id": home_account_id})):
            self._cache.remove_at(at)


def _dead_grant(result: Optional[Dict[str, Any]]) -> bool:
    """Whether an MSAL error says the refresh token itself will never work again."""
    if not result:
        return False
    return result.get("error") == "invalid_grant" and \
        result.get("suberror") not in _INTERACTION_SUBERRORS


def _authority_realm(account: "Account") -> Optional[str]:
    """The realm before discovery: the authority's tenant segment, as its token endpoint has it."""
    try:
        return canonicalize(account.oidc_authority or account.authority or "")[2]
    except ValueError:
        return None


def _realm(app: msal.PublicClientApplication) -> Optional[str]:
    """The realm MSAL records for accounts signed in through ``app`` (see TokenCache.__add)."""
    try:
        return canonicalize(app.authority.token_endpoint)[2]
    except ValueError:
        return None
