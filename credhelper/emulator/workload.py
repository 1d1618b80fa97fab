"""OIDC issuers standing in for the places a workspace runs: Gitpod, Ona, GitHub Actions, AKS.

Each issuer lives under its own path on the IdP's port (``/workspace``, ``/ona``, ``/actions``,
``/aks``) with discovery and JWKS, and signs with the workspace key; the directory trusts each
one by its ``iss``, so Entra's checks (iss, sub, aud, signature, window) apply to all of them.
``/actions/_apis/idtoken`` answers like the Actions runtime: ``GET ...&audience=AUD`` with the job's
request token as a bearer, ``{"count": 1, "value": JWT}``.
"""

import hmac
import secrets
import time
from typing import Callable, Dict, List, Optional

from . import jwt
from .directory import EXCHANGE_AUDIENCE
from .web import Request, Response, json_response, text_response

# path -> the subject a default app registration trusts (the platforms' own formats)
SUBJECTS: Dict[str, str] = {
    "workspace": "workspace:demo",                                             # Gitpod Classic
    "ona": "organization_id:0190a1b2-org0-demo:project_id:0190a1b2-proj-demo",  # Ona V3 sub
    "actions": "repo:contoso/app:ref:refs/heads/main",                         # GitHub Actions
    "aks": "system:serviceaccount:default:workload",                           # AKS pod
}
ACTIONS_TOKEN_PATH = "/actions/_apis/idtoken"
ACTIONS_DEFAULT_AUDIENCE = "https://github.com/contoso"


def mint(key: jwt.SigningKey, issuer: str, subject: str, audience: str = EXCHANGE_AUDIENCE,
         lifetime: int = 3600) -> str:
    """Sign a workload ID token; shared by the in-process issuers and the fake CLIs."""
    now = int(time.time())
    return key.sign({"iss": issuer, "sub": subject, "aud": audience, "iat": now,
                     "nbf": min(now, now + lifetime), "exp": now + lifetime,
                     "jti": secrets.token_hex(8)})


class WorkloadIssuers:
    """The four issuers and the Actions token endpoint; ``remember`` notes what crossed the wire."""

    def __init__(self, key: jwt.SigningKey, base: Callable[[], str],
                 remember: Callable[..., None]) -> None:
        self.key = key
        self._base = base
        self._remember = remember
        self.actions_request_token = secrets.token_urlsafe(32)
        remember(self.actions_request_token)
        self.actions_requests: List[Dict[str, Optional[str]]] = []   # audience, status; no token

    def __repr__(self) -> str:
        return "WorkloadIssuers({})".format(", ".join(SUBJECTS))

    def issuer(self, name: str) -> str:
        """The ``iss`` of issuer ``name`` (one of SUBJECTS)."""
        if name not in SUBJECTS:
            raise KeyError(name)
        return "{}/{}".format(self._base(), name)

    @property
    def actions_request_url(self) -> str:
        """What the runner puts in ``ACTIONS_ID_TOKEN_REQUEST_URL``."""
        return self._base() + ACTIONS_TOKEN_PATH + "?api-version=2.0"

    def mint(self, name: str, subject: Optional[str] = None, audience: str = EXCHANGE_AUDIENCE,
             lifetime: int = 3600) -> str:
        """A token from issuer ``name``; remembered for the leak check."""
        token = mint(self.key, self.issuer(name), subject or SUBJECTS[name], audience, lifetime)
        self._remember(token)
        return token

    def __call__(self, request: Request, parts: List[str]) -> Response:
        """Discovery and keys of each issuer, and the Actions token endpoint."""
        name, rest = parts[0], parts[1:]
        if rest == [".well-known", "openid-configuration"]:
            issuer = self.issuer(name)
            return json_response(200, {
                "issuer": issuer, "jwks_uri": issuer + "/keys",
                "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"]})
        if rest == ["keys"]:
            return json_response(200, self.key.jwks())
        if name == "actions" and "/" + "/".join(parts) == ACTIONS_TOKEN_PATH:
            return self._actions_token(request)
        return text_response(404, "not found")

    def _actions_token(self, request: Request) -> Response:
        audience = request.query.get("audience") or ACTIONS_DEFAULT_AUDIENCE
        bearer = request.headers.get("Authorization", "")
        ok = bearer.startswith("Bearer ") and hmac.compare_digest(
            bearer[len("Bearer "):].encode(), self.actions_request_token.encode())
        status = 200 if ok and request.method == "GET" else 401
        self.actions_requests.append({"audience": audience, "status": str(status)})
        if status != 200:
            return json_response(401, {"message": "Bad credentials"})
        return json_response(200, {"count": 1, "value": self.mint("actions", audience=audience)})
