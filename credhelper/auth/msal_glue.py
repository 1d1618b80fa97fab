"""Translation at the MSAL boundary: our Account in, MSAL's result dicts out as Token or errors.

MSAL reports failures as dicts whose ``error_description`` can echo what was sent (a client
id, a scope, sometimes part of an assertion), so messages keep only the OAuth ``error`` code and
the first AADSTS number. Times are rebased onto the caller's clock: MSAL stamps ``refresh_on``
with the wall clock, we want ``now + refresh_in`` on the injected one.
"""

import math
import re
import time
from typing import TYPE_CHECKING, Any, Dict, Optional
from urllib.parse import urlsplit

from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS

from ..errors import AuthFailed, CredhelperError, IdpUnavailable, NotSignedIn
from .base import Token

if TYPE_CHECKING:
    from ..config import Account

# Answers that mean "a person must sign in again", not "the configuration is wrong".
USER_ACTION_ERRORS = frozenset({
    "invalid_grant", "interaction_required", "login_required", "consent_required",
})
_TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error"})
_OAUTH_ERROR = re.compile(r"[a-z_]{1,64}")
_AADSTS = re.compile(r"AADSTS(\d{1,10})")
# RFC 6750 b64token characters are all visible ASCII; anything else could split a header.
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")


def authority_options(account: "Account") -> Dict[str, Any]:
    """``authority``/``oidc_authority`` and ``instance_discovery`` keyword arguments for MSAL."""
    if account.oidc_authority:
        return {"oidc_authority": account.oidc_authority, "instance_discovery": False}
    host = (urlsplit(account.authority or "").hostname or "").lower()
    # Instance discovery asks login.microsoftonline.com about the host: useless (and a call to
    # the internet) for anything but Microsoft's own clouds.
    known = host in WELL_KNOWN_AUTHORITY_HOSTS
    return {"authority": account.authority, "instance_discovery": None if known else False}


def not_signed_in(account: "Account") -> NotSignedIn:
    """The one message every "a person must sign in" situation shows."""
    return NotSignedIn(
        f"account '{account.name}' needs sign-in: run credhelper login {account.name}",
        account=account.name)


def describe_error(result: Dict[str, Any]) -> str:
    """``AADSTS7000215 invalid_client`` from an MSAL error dict, without its description."""
    error = str(result.get("error") or "")
    error = error if _OAUTH_ERROR.fullmatch(error) else "error"
    code: Optional[str] = None
    codes = result.get("error_codes")
    if isinstance(codes, list) and codes and isinstance(codes[0], int):
        code = str(codes[0])
    else:
        match = _AADSTS.search(str(result.get("error_description") or ""))
        code = match.group(1) if match else None
    return f"AADSTS{code} {error}" if code else error


def error_from_result(account: "Account", result: Dict[str, Any],
                      user_flow: bool = False) -> CredhelperError:
    """The exception an MSAL error dict stands for."""
    error = str(result.get("error") or "")
    if user_flow and error in USER_ACTION_ERRORS:
        return not_signed_in(account)
    detail = describe_error(result)
    if error in _TRANSIENT_ERRORS:
        return IdpUnavailable(f"account '{account.name}': {detail}")
    return AuthFailed(f"account '{account.name}': {detail}")


def token_from_result(account: "Account", result: Optional[Dict[str, Any]], now: float,
                      user_flow: bool = False) -> Token:
    """A Token from an MSAL result dict, timed on the caller's clock; raises on anything else."""
    if not result:
        raise not_signed_in(account) if user_flow else AuthFailed(
            f"account '{account.name}': the identity provider returned nothing")
    if "access_token" not in result:
        raise error_from_result(account, result, user_flow)
    access_token = result["access_token"]
    if not isinstance(access_token, str) or not _TOKEN_CHARS.fullmatch(access_token):
        raise AuthFailed(f"account '{account.name}': the identity provider returned a "
                         "malformed access token (whitespace or control characters)")
    try:
        expires_in = float(result["expires_in"])
    except (KeyError, TypeError, ValueError):
        expires_in = 0.0
    if not expires_in > 0:
        raise AuthFailed(f"account '{account.name}': token response without a usable expires_in")
    refresh_in: Optional[float] = None
    if isinstance(result.get("refresh_in"), (int, float)):
        refresh_in = float(result["refresh_in"])
    elif isinstance(result.get("refresh_on"), (int, float)):
        # MSAL turned refresh_in into int(time.time() + refresh_in) a moment ago.
        refresh_in = float(math.ceil(result["refresh_on"] - time.time()))
    refresh_on = now + refresh_in if refresh_in is not None and 0 < refresh_in < expires_in \
        else None
    return Token(access_token=access_token, expires_on=now + expires_in, refresh_on=refresh_on)
