"""App-only tokens for ``federated``, ``client_secret`` and ``certificate`` accounts.

Credentials are read at each acquire, never at start: the assertion is minted fresh per token
request (MSAL calls our callable), the secret comes from the environment variable as it is now,
the certificate file as it is now. When the secret or certificate changes, the MSAL application
is rebuilt, because MSAL bakes the credential into the application.
"""

import hashlib
import os
import re
import threading
from typing import TYPE_CHECKING, Any, Optional, Tuple

import msal

from ..errors import AuthFailed
from .assertion import read_assertion_file, run_assertion_command
from .base import Token
from .http import HttpClient, NoStore
from .msal_glue import authority_options, token_from_result
from .providers import EXCHANGE_AUDIENCE, fetch_assertion

if TYPE_CHECKING:
    from ..config import Account

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.S)
_CERT_FILE_LIMIT = 1024 * 1024


def _drop_access_tokens(cache: msal.TokenCache) -> None:
    """Forget MSAL's copies: we hold tokens ourselves, and a cached one would stop MSAL asking."""
    for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
        cache.remove_at(entry)


def load_certificate(path: str) -> dict:
    """MSAL's ``client_credential`` from a PEM file holding an RSA key and its certificate.

    MSAL derives the SHA-1 and SHA-256 thumbprints (``x5t``, ``x5t#S256``) and the ``x5c``
    chain from ``public_certificate``; we check the pair first so a mix-up reads as one clear
    line rather than an AADSTS code.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    origin = f"certificate_file {path}"
    try:
        with open(os.path.expanduser(path), "rb") as f:
            data = f.read(_CERT_FILE_LIMIT)
    except OSError as exc:
        raise AuthFailed(f"{origin}: {exc.strerror or type(exc).__name__}") from exc
    blocks = [(m.group(1).decode(), m.group(0)) for m in _PEM_BLOCK.finditer(data)]
    keys = [pem for label, pem in blocks if label.endswith("PRIVATE KEY")]
    certs = [pem for label, pem in blocks if label == "CERTIFICATE"]
    if not keys or not certs:
        raise AuthFailed(f"{origin}: needs both a PEM private key and a PEM certificate")
    if b"ENCRYPTED" in keys[0]:
        raise AuthFailed(f"{origin}: the private key is encrypted; store it unencrypted (0600)")
    try:
        key = serialization.load_pem_private_key(keys[0], password=None)
        cert = x509.load_pem_x509_certificate(certs[0])
    except (ValueError, TypeError) as exc:
        raise AuthFailed(f"{origin}: cannot parse the key or certificate") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise AuthFailed(f"{origin}: Entra needs an RSA key")
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise AuthFailed(f"{origin}: the certificate does not belong to the private key")
    return {
        "private_key": keys[0].decode("ascii"),
        "public_certificate": b"\n".join(certs).decode("ascii"),
    }


class ConfidentialSource:
    """Client-credentials tokens for one account, asking the IdP on every acquire."""

    def __init__(self, account: "Account", http_client: HttpClient) -> None:
        self.account = account
        self._http = http_client
        self._cache = msal.TokenCache()  # private: nothing here is persisted or shared
        self._app: Optional[msal.ConfidentialClientApplication] = None
        self._app_key = ""
        self._lock = threading.Lock()

    def acquire(self, scopes: Tuple[str, ...], now: float) -> Token:
        """A new app-only token for ``scopes`` (``.../.default``), straight from the IdP."""
        with self._lock:
            credential, key = self._credential()
            app = self._application(credential, key)
            _drop_access_tokens(self._cache)
            try:
                result = app.acquire_token_for_client(list(scopes))
            except ValueError as exc:  # MSAL's word for a malformed answer or discovery failure
                raise AuthFailed(f"account '{self.account.name}': unexpected answer from the "
                                 f"identity provider ({type(exc).__name__})") from exc
            finally:
                _drop_access_tokens(self._cache)
        return token_from_result(self.account, result, now)

    def close(self) -> None:
        """Release connections."""
        self._http.close()

    def _credential(self) -> Tuple[Any, str]:
        """MSAL's ``client_credential`` and a fingerprint that changes when it does."""
        account = self.account
        if account.flow == "federated":
            if not (account.assertion_command or account.assertion_file
                    or account.assertion_provider):
                raise AuthFailed(f"account '{account.name}': federated needs "
                                 "assertion_command, assertion_file or assertion_provider")
            return {"client_assertion": self._assertion}, "federated"
        if account.flow == "client_secret":
            var = account.client_secret_env or ""
            secret = os.environ.get(var, "") if var else ""
            if not secret:
                raise AuthFailed(f"account '{account.name}': environment variable "
                                 f"{var or '(client_secret_env)'} is not set")
            return secret, hashlib.sha256(secret.encode()).hexdigest()
        if account.flow == "certificate":
            credential = load_certificate(account.certificate_file or "")
            digest = hashlib.sha256(credential["private_key"].encode()
                                    + credential["public_certificate"].encode()).hexdigest()
            return credential, digest
        raise AuthFailed(f"account '{account.name}': flow {account.flow!r} is not a "
                         "confidential client flow")

    def _assertion(self) -> str:
        account = self.account
        if account.assertion_command:
            return run_assertion_command(account.assertion_command)
        if account.assertion_provider:
            # The account's trust (ca_bundle) also covers an Actions token endpoint it names.
            return fetch_assertion(account.assertion_provider,
                                   account.assertion_audience or EXCHANGE_AUDIENCE, self._http)
        return read_assertion_file(account.assertion_file or "")

    def _application(self, credential: Any, key: str) -> msal.ConfidentialClientApplication:
        if self._app is None or key != self._app_key:
            try:
                self._app = msal.ConfidentialClientApplication(
                    self.account.client_id, client_credential=credential,
                    http_client=self._http, http_cache=NoStore(), token_cache=self._cache,
                    **authority_options(self.account))
            except ValueError as exc:
                where = self.account.oidc_authority or self.account.authority
                raise AuthFailed(f"account '{self.account.name}': cannot use authority "
                                 f"{where} (OpenID discovery failed)") from exc
            self._app_key = key
        return self._app
