"""Tokens for the machine's managed identity (App Service, VM IMDS, Arc, ... as MSAL detects).

MSAL's ManagedIdentityClient answers from its own token cache while a token has more than five
minutes left; we hold tokens ourselves, so each acquire uses a fresh, empty cache (a managed
identity has no refresh token to lose) and always reaches the endpoint.
"""

import threading
from typing import TYPE_CHECKING, Tuple, Union

import msal

from ..errors import AuthFailed
from .base import Token
from .http import HttpClient, NoStore
from .msal_glue import token_from_result

if TYPE_CHECKING:
    from ..config import Account


def scope_to_resource(scope: str) -> str:
    """Managed identity endpoints take a v1 resource: the scope without ``/.default``."""
    return scope[: -len("/.default")] if scope.endswith("/.default") else scope


class ManagedIdentitySource:
    """Tokens for a system-assigned, or (``managed_identity_client_id``) user-assigned identity."""

    def __init__(self, account: "Account", http_client: HttpClient) -> None:
        self.account = account
        self._http = http_client
        self._identity: Union[msal.SystemAssignedManagedIdentity,
                              msal.UserAssignedManagedIdentity] = (
            msal.UserAssignedManagedIdentity(client_id=account.managed_identity_client_id)
            if account.managed_identity_client_id else msal.SystemAssignedManagedIdentity())
        self._lock = threading.Lock()

    def acquire(self, scopes: Tuple[str, ...], now: float) -> Token:
        """A new token for the one resource named by ``scopes``."""
        if len(scopes) != 1:
            raise AuthFailed(f"account '{self.account.name}': a managed identity takes exactly "
                             f"one scope, got {len(scopes)}")
        client = msal.ManagedIdentityClient(
            self._identity, http_client=self._http, http_cache=NoStore(),
            token_cache=msal.TokenCache())
        with self._lock:
            try:
                result = client.acquire_token_for_client(resource=scope_to_resource(scopes[0]))
            except ValueError as exc:  # a non-JSON answer, or MSAL refusing the environment
                raise AuthFailed(f"account '{self.account.name}': unexpected answer from the "
                                 f"managed identity endpoint ({type(exc).__name__})") from exc
        return token_from_result(self.account, result, now)

    def close(self) -> None:
        """Release connections."""
        self._http.close()
