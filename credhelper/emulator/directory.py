"""App registrations and how a client proves it is one: secret, certificate or federated assertion.

Assertions are checked in Entra's order: find a federated record matching (iss, sub, aud), then
the signature against that issuer's key, then the validity window.
"""

import hmac
import time
import uuid
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from . import jwt
from .aad import OAuthError

EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLOCK_SKEW = 300

FederatedSpec = Union[Tuple[str, str], Tuple[str, str, str], Mapping[str, str]]


@dataclass(frozen=True)
class FederatedCredential:
    """A federated identity record: which issuer's which subject may act as the app."""

    issuer: str
    subject: str
    audience: str = EXCHANGE_AUDIENCE


@dataclass
class App:
    """One app registration with its service principal."""

    client_id: str
    secret: Optional[str] = field(default=None, repr=False)
    certificates: List[x509.Certificate] = field(default_factory=list)
    federated: List[FederatedCredential] = field(default_factory=list)
    public: bool = False
    managed_identity: bool = False

    @property
    def object_id(self) -> str:
        """The service principal's object id, stable per client id."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, "sp:" + self.client_id))

    @property
    def confidential(self) -> bool:
        """Whether the app holds any credential at all."""
        return bool(self.secret or self.certificates or self.federated)


def federated_credential(spec: FederatedSpec) -> FederatedCredential:
    """A record from ``(issuer, subject[, audience])`` or a dict with those keys."""
    if isinstance(spec, Mapping):
        return FederatedCredential(spec["issuer"], spec["subject"],
                                   spec.get("audience", EXCHANGE_AUDIENCE))
    return FederatedCredential(*spec)


def _thumbprints(cert: x509.Certificate) -> Tuple[str, str]:
    return (jwt.b64url(cert.fingerprint(hashes.SHA1())),
            jwt.b64url(cert.fingerprint(hashes.SHA256())))


class Directory:
    """The tenant's app registrations and the OIDC issuers it trusts for federation."""

    def __init__(self) -> None:
        self.apps: Dict[str, App] = {}
        self.issuers: Dict[str, rsa.RSAPublicKey] = {}

    def register(self, client_id: str, secret: Optional[str] = None,
                 certificate_pem: Optional[Union[str, bytes]] = None,
                 federated: Sequence[FederatedSpec] = (), public: bool = False,
                 managed_identity: bool = False) -> App:
        """Add or replace an app registration."""
        certificates = []
        if certificate_pem:
            data = certificate_pem.encode() if isinstance(certificate_pem, str) else certificate_pem
            certificates = x509.load_pem_x509_certificates(data)
        app = App(client_id, secret, certificates, [federated_credential(f) for f in federated],
                  public, managed_identity)
        self.apps[client_id] = app
        return app

    def app(self, client_id: str, tenant: str) -> App:
        """The registration, or AADSTS700016 as Entra answers for an unknown client id."""
        app = self.apps.get(client_id)
        if app is None:
            raise OAuthError("unauthorized_client", 700016,
                             "Application with identifier '{}' was not found in the directory "
                             "'{}'.".format(client_id, tenant))
        return app

    def authenticate(self, app: App, form: Mapping[str, str], token_endpoint: str) -> str:
        """How the confidential client proved itself: "secret", "certificate" or "federated"."""
        if "client_secret" in form:
            if not app.secret or not hmac.compare_digest(app.secret, form["client_secret"]):
                raise OAuthError("invalid_client", 7000215,
                                 "Invalid client secret provided. Ensure the secret being sent "
                                 "in the request is the client secret value, not the client "
                                 "secret ID, for a secret added to app '{}'.".format(app.client_id),
                                 status=401)
            return "secret"
        assertion = form.get("client_assertion")
        if not assertion:
            raise OAuthError("invalid_client", 7000218,
                             "The request body must contain the following parameter: "
                             "'client_assertion' or 'client_secret'.", status=401)
        if form.get("client_assertion_type") != JWT_BEARER:
            raise OAuthError("invalid_request", 50027, "client_assertion_type is not supported.")
        try:
            header, claims = jwt.decode_unverified(assertion)
        except jwt.JwtError:
            raise OAuthError("invalid_client", 50027, "JWT token is invalid or malformed.",
                             status=401) from None
        if claims.get("iss") == app.client_id and claims.get("sub") == app.client_id:
            self._check_certificate(app, assertion, header, claims, token_endpoint)
            return "certificate"
        self._check_federated(app, assertion, claims)
        return "federated"

    def _check_certificate(self, app: App, assertion: str, header: Mapping[str, object],
                           claims: Mapping[str, object], token_endpoint: str) -> None:
        wanted = [str(header.get(name, "")).rstrip("=") for name in ("x5t", "x5t#S256")]
        cert = next((c for c in app.certificates
                     if any(t and t in wanted for t in _thumbprints(c))), None)
        if cert is None:
            raise OAuthError("invalid_client", 700027, "The certificate with identifier used to "
                             "sign the client assertion is not registered on application.",
                             status=401)
        try:
            jwt.verify(assertion, cert.public_key())  # type: ignore[arg-type]
        except jwt.JwtError:
            raise OAuthError("invalid_client", 700027, "Client assertion failed signature "
                             "validation.", status=401) from None
        if claims.get("aud") != token_endpoint:
            raise OAuthError("invalid_client", 700212, "No matching federated identity record "
                             "found for presented assertion audience '{}'.".format(claims.get("aud")),
                             status=401)
        _check_window(claims)

    def _check_federated(self, app: App, assertion: str, claims: Mapping[str, object]) -> None:
        iss, sub, aud = claims.get("iss"), claims.get("sub"), claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        record = next((f for f in app.federated
                       if f.issuer == iss and f.subject == sub and f.audience in audiences), None)
        if record is None:
            raise OAuthError("invalid_client", 70021,
                             "No matching federated identity record found for presented "
                             "assertion. Assertion Issuer: '{}'. Assertion Subject: '{}'. "
                             "Assertion Audience: '{}'.".format(iss, sub, aud), status=401)
        key = self.issuers.get(record.issuer)
        try:
            if key is None:
                raise jwt.JwtError("issuer keys unknown")
            jwt.verify(assertion, key)
        except jwt.JwtError:
            raise OAuthError("invalid_client", 50013, "Assertion failed signature validation.",
                             status=401) from None
        _check_window(claims)


def _check_window(claims: Mapping[str, object]) -> None:
    now = time.time()
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, (int, float)) or exp + CLOCK_SKEW < now:
        raise OAuthError("invalid_client", 700024, "Client assertion is not within its valid "
                         "time range.", status=401)
    if isinstance(nbf, (int, float)) and nbf - CLOCK_SKEW > now:
        raise OAuthError("invalid_client", 700024, "Client assertion is not within its valid "
                         "time range.", status=401)
