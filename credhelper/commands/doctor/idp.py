"""Doctor checks that talk to the identity provider and the daemon: reachability, clock, tokens.

The IdP is asked only for its public discovery document, with each account's own ``ca_bundle``
through the same HTTP client MSAL uses (so ``REQUESTS_CA_BUNDLE`` cannot override it). Tokens are
asked of the daemon; the reply is read for its expiry and error code, and the token is dropped.
"""

import email.utils
import time
from typing import Dict, Iterator, List, Optional, Tuple

from ...auth.http import HttpClient, http_timeout
from ...client import Client
from ...config import Account
from ...errors import CredhelperError, NoRoute, RequestError
from ...routing import Router, redact_url
from .report import FAIL, OK, SKIP, WARN, Check, Context

MAX_SKEW = 300.0  # seconds; Entra refuses assertions and tokens that far out of step
_FIXES = {
    "not_signed_in": "run: credhelper login {account}",
    "login_failed": "run: credhelper login {account}",
    "idp_unavailable": "see the idp check above; the daemon retries by itself",
    "throttled": "wait: the identity provider asked us to slow down; the daemon retries",
    "auth_failed": "check client_id, the secret/certificate/federation of account {account}; "
                   "then: credhelper reload",
}


def discovery_url(account: Account) -> Optional[str]:
    """The OpenID configuration URL of ``account``'s authority; None for managed identity."""
    if account.oidc_authority:
        return account.oidc_authority.rstrip("/") + "/.well-known/openid-configuration"
    if account.authority:
        return account.authority.rstrip("/") + "/v2.0/.well-known/openid-configuration"
    return None


def _fetch(url: str, ca_bundle: Optional[str]) -> Tuple[dict, Optional[float]]:
    """The discovery document and the server's clock (from ``Date``) at the time it answered."""
    client = HttpClient(ca_bundle=ca_bundle, timeout=min(http_timeout(), 10.0))
    try:
        resp = client.get(url)
        sent = resp.headers.get("Date")
        if resp.status_code != 200:
            raise RequestError(f"{redact_url(url)} answered HTTP {resp.status_code}")
        try:
            document = resp.json()
        except ValueError as exc:
            raise RequestError(f"{redact_url(url)} did not answer JSON") from exc
    finally:
        client.close()
    try:
        when = email.utils.parsedate_to_datetime(sent).timestamp() if sent else None
    except (TypeError, ValueError):
        when = None  # an unreadable Date says nothing about our clock
    return (document if isinstance(document, dict) else {}), when


def check_idp(ctx: Context) -> Iterator[Check]:
    """Every account's authority answers its discovery document; our clock agrees with it."""
    if ctx.config is None:
        yield Check("idp", SKIP, "needs a valid config")
        return
    ctx.issuers = []
    skews: List[Tuple[float, str]] = []
    for name, account in ctx.config.accounts.items():
        url = discovery_url(account)
        if url is None:
            yield Check(f"idp {name}", SKIP, "managed identity: the platform's endpoint is not checked")
            continue
        try:
            document, server_time = _fetch(url, account.ca_bundle)
        except CredhelperError as exc:
            fix = (f"check the network, proxy and ca_bundle of [accounts.{name}]"
                   if "TLS" in exc.message else f"check authority/oidc_authority of [accounts.{name}]"
                   " and that the host is reachable from here")
            yield Check(f"idp {name}", FAIL, exc.message, fix)
            continue
        if isinstance(document.get("issuer"), str):
            ctx.issuers.append(document["issuer"])
        if server_time is not None:
            skews.append((time.time() - server_time, redact_url(url)))
        yield Check(f"idp {name}", OK, f"{redact_url(url)} answers")
    if skews:
        skew, where = max(skews, key=lambda item: abs(item[0]))
        ahead = "ahead of" if skew > 0 else "behind"
        if abs(skew) > MAX_SKEW:
            yield Check("clock", FAIL, f"this machine's clock is {abs(skew):.0f}s {ahead} {where}; "
                        "tokens and assertions will be refused",
                        "sync the clock: sudo timedatectl set-ntp true (or run chronyd/ntpd)")
        else:
            yield Check("clock", OK, f"within {max(abs(skew), 1):.0f}s of the identity provider")


def probe_url(router: Router, url: str) -> Optional[str]:
    """A URL under route ``url`` that resolves to that very route, for a test ``get``."""
    for candidate in (url, url.rstrip("/") + "/credhelper-doctor"):
        try:
            if router.resolve(candidate).url == url:
                return candidate
        except (NoRoute, CredhelperError):
            continue
    return None


def check_tokens(ctx: Context) -> Iterator[Check]:
    """The daemon hands out a token for one route of each account."""
    if ctx.config is None or ctx.daemon is None:
        yield Check("tokens", SKIP, "needs a valid config and a running daemon")
        return
    router, client = Router(ctx.config.routes), Client(timeout=30.0)
    first: Dict[str, str] = {}
    for route in ctx.config.routes:
        first.setdefault(route.account, route.url)
    for name in ctx.config.accounts:
        url = probe_url(router, first[name]) if name in first else None
        if url is None:
            yield Check(f"token {name}", WARN, "no route leads to this account; it is never used",
                        f"add a [[routes]] entry with account = \"{name}\" or remove the account")
            continue
        try:
            reply = client.get(url, for_="doctor")
        except CredhelperError as exc:
            fix = _FIXES.get(exc.code, "see: credhelper status").format(account=name)
            yield Check(f"token {name}", FAIL, f"{exc.code}: {exc.message}", fix)
            continue
        left = (float(reply.get("expires_on") or 0) - time.time()) / 60
        del reply  # holds the token; nothing below may see it
        yield Check(f"token {name}", OK if left > 0 else FAIL,
                    f"obtained for {redact_url(url)}, valid {left:.0f} more minute(s)",
                    "run: credhelper reload" if left <= 0 else None)
