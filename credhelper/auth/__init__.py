"""Credential sources, one module per kind, all behind ``Source.acquire(scopes, now)``.

    federated, client_secret, certificate  → confidential.ConfidentialSource
    device_code                            → device_code.DeviceCodeSource (uses the shared cache)
    managed_identity                       → managed_identity.ManagedIdentitySource

Each source talks through its own ``http.HttpClient`` (its account's ``ca_bundle``, the timeout).
"""

from typing import TYPE_CHECKING, Optional

from ..errors import ConfigError
from .base import Source, Token

if TYPE_CHECKING:
    import msal

    from ..config import Account

__all__ = ["Source", "Token", "make_source"]

_CONFIDENTIAL = ("federated", "client_secret", "certificate")


def make_source(account: "Account", cache: "msal.SerializableTokenCache",
                http_timeout: Optional[float] = None) -> Source:
    """The credential source for ``account.flow`` (``http_timeout`` None: the env or 10 s)."""
    from .http import HttpClient  # msal and requests load only when a source is made

    if account.flow in _CONFIDENTIAL:
        from .confidential import ConfidentialSource
        return ConfidentialSource(account, HttpClient(account.ca_bundle, http_timeout))
    if account.flow == "device_code":
        from .device_code import DeviceCodeSource
        return DeviceCodeSource(account, cache, HttpClient(account.ca_bundle, http_timeout))
    if account.flow == "managed_identity":
        from .managed_identity import ManagedIdentitySource
        return ManagedIdentitySource(account, HttpClient(account.ca_bundle, http_timeout))
    raise ConfigError(f"account '{account.name}': unknown flow {account.flow!r}")
