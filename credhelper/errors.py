"""One exception tree for credhelper; every error has a stable wire code.

    CredhelperError                 error
    ├── ConfigError                 config_error
    ├── RequestError                bad_request
    ├── NoRoute                     no_route
    ├── AmbiguousRoute              ambiguous_route
    ├── NotSignedIn                 not_signed_in
    ├── AuthFailed                  auth_failed
    │   ├── Throttled               throttled        (carries retry_after)
    │   └── IdpUnavailable          idp_unavailable  (5xx, timeout, refused)
    ├── LoginFailed                 login_failed     (denied, expired, cancelled)
    ├── Busy                        busy
    ├── Forbidden                   forbidden        (peer is not our uid)
    ├── VaultError                  vault_error
    └── DaemonUnavailable           daemon_unavailable (client side only)
        └── ForeignSocket           foreign_socket   (socket not provably our own daemon's)

Foreign errors (msal error dicts, InvalidTag, OSError) are translated at the boundary with
``raise ... from exc``. Messages are one line and never contain token material.
This module is on the hot path: standard library only.
"""

TYPE_CHECKING = False  # the typing module itself costs milliseconds on every git call
if TYPE_CHECKING:
    from typing import Dict, Optional, Type


class CredhelperError(Exception):
    """Base of every credhelper error; ``code`` is the stable wire code."""

    code = "error"

    def __init__(self, message: str, *, retry_after: "Optional[float]" = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after

    def to_wire(self) -> "dict":
        """The error as a socket reply."""
        reply = {"ok": False, "code": self.code, "message": self.message}
        if self.retry_after is not None:
            reply["retry_after"] = self.retry_after
        return reply


class ConfigError(CredhelperError):
    """The configuration file is missing, malformed or inconsistent."""

    code = "config_error"


class RequestError(CredhelperError):
    """A client sent something the daemon cannot understand."""

    code = "bad_request"


class NoRoute(CredhelperError):
    """No configured route covers the URL; the caller gets nothing."""

    code = "no_route"


class AmbiguousRoute(CredhelperError):
    """A path-less request matches a host whose routes lead to different identities."""

    code = "ambiguous_route"


class NotSignedIn(CredhelperError):
    """The account needs a person to run ``credhelper login``; ``account`` names it."""

    code = "not_signed_in"

    def __init__(self, message: str, *, account: "Optional[str]" = None,
                 retry_after: "Optional[float]" = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.account = account

    def to_wire(self) -> "dict":
        """The error as a socket reply, with the account a front-end may offer to sign in."""
        reply = super().to_wire()
        if self.account is not None:
            reply["account"] = self.account
        return reply


class AuthFailed(CredhelperError):
    """The identity provider refused to issue a token."""

    code = "auth_failed"


class Throttled(AuthFailed):
    """The identity provider asked us to slow down (HTTP 429)."""

    code = "throttled"


class IdpUnavailable(AuthFailed):
    """The identity provider could not be reached or answered 5xx."""

    code = "idp_unavailable"


class LoginFailed(CredhelperError):
    """A device-code sign-in was denied, expired or cancelled."""

    code = "login_failed"


class Busy(CredhelperError):
    """The daemon is overloaded or shutting down; try again."""

    code = "busy"


class Forbidden(CredhelperError):
    """The connecting process does not belong to the daemon's user."""

    code = "forbidden"


class VaultError(CredhelperError):
    """The encrypted cache could not be read or written."""

    code = "vault_error"


class DaemonUnavailable(CredhelperError):
    """No daemon answers on the socket."""

    code = "daemon_unavailable"


class ForeignSocket(DaemonUnavailable):
    """The socket's directory or the process listening on it is not the user's own."""

    code = "foreign_socket"


_BY_CODE: "Dict[str, Type[CredhelperError]]" = {
    cls.code: cls
    for cls in (
        CredhelperError, ConfigError, RequestError, NoRoute, AmbiguousRoute, NotSignedIn,
        AuthFailed, Throttled, IdpUnavailable, LoginFailed, Busy, Forbidden, VaultError,
        DaemonUnavailable, ForeignSocket,
    )
}


# How a device-code sign-in ends without success: the daemon's error code and the line a person
# reads. ``credhelper login`` gives each its own exit code (commands/exits.py).
SIGN_IN_ENDINGS = {
    "access_denied": "sign-in to '{account}' was declined at the sign-in page; to try again: "
                     "credhelper login {account}",
    "authorization_declined": "sign-in to '{account}' was declined at the sign-in page; to try "
                              "again: credhelper login {account}",
    "expired_token": "the code expired before sign-in finished; run credhelper login {account} "
                     "for a new one",
    "code_expired": "the code expired before sign-in finished; run credhelper login {account} "
                    "for a new one",
    "cancelled": "sign-in to '{account}' was cancelled (another credhelper login or logout took over)",
}


def sign_in_ending(error: str, account: str) -> "Optional[str]":
    """The line for a sign-in that ended with ``error``, or None when it is not a known ending."""
    text = SIGN_IN_ENDINGS.get(error)
    return text.format(account=account) if text is not None else None


def from_wire(reply: "dict") -> "CredhelperError":
    """Rebuild the exception a daemon reply describes (unknown codes become the base class)."""
    cls = _BY_CODE.get(str(reply.get("code")), CredhelperError)
    err = cls(str(reply.get("message") or reply.get("code") or "unknown error"))
    if cls is CredhelperError and reply.get("code"):
        err.code = str(reply["code"])
    retry_after = reply.get("retry_after")
    if isinstance(retry_after, (int, float)):
        err.retry_after = float(retry_after)
    if isinstance(err, NotSignedIn) and isinstance(reply.get("account"), str):
        err.account = reply["account"]
    return err
