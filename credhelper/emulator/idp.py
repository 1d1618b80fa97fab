"""The Entra-shaped identity provider: discovery, JWKS, the token and device-code endpoints,
faults on demand, a request log, and an admin API for other processes.

Other processes drive it over HTTP under ``/_emulator/``; tests in-process call the same methods.
The log never holds a secret, an assertion or a token.
"""

import json
import random
import threading
import time
import uuid
from typing import Any, Dict, List, Optional, Set, Tuple

from . import jwt
from .directory import Directory
from .faults import Faults
from .devicelogin import devicelogin
from .sessions import Sessions
from .grants import devicecode_endpoint, display_name, token_endpoint, user_oid
from .web import Request, Response, json_response, text_response
from .workload import SUBJECTS, WorkloadIssuers


WORKSPACE_PATH = "workspace"


class IdentityProvider:
    """One IdP serving any tenant path segment; thread-safe."""

    def __init__(self, signing_key: jwt.SigningKey, workspace_key: jwt.SigningKey,
                 stopping: threading.Event) -> None:
        self.base = ""                      # set by the Emulator once the port is known
        self.signing_key = signing_key
        self.workspace_key = workspace_key
        self.directory = Directory()
        self.sessions = Sessions()
        self.faults = Faults()
        self.lifetime: Tuple[int, int] = (3600, 5400)
        self.date_skew = 0.0                # seconds added to the Date header (a server clock off)
        self.requests: List[Dict[str, Any]] = []
        self.feed_log: List[Dict[str, Any]] = []   # the feed server's log, shown by /stats
        self._lock = threading.Lock()
        self._stopping = stopping
        self._secrets: Set[str] = set()
        self.workload = WorkloadIssuers(workspace_key, lambda: self.base, self.remember)

    # -- the Python API ------------------------------------------------------------------------
    def issuer(self, tenant: str) -> str:
        """The v2.0 issuer of ``tenant``."""
        return "{}/{}/v2.0".format(self.base, tenant)

    @property
    def workspace_issuer(self) -> str:
        """The OIDC issuer standing in for the workspace (Gitpod's ``gp idp token``)."""
        return self.workload.issuer(WORKSPACE_PATH)

    def fail(self, kind: str, times: int = 1, retry_after: Optional[int] = None,
             seconds: Optional[float] = None) -> None:
        """Make the next ``times`` token requests fail with ``kind`` (see faults.KINDS)."""
        self.faults.add(kind, times, retry_after, seconds)

    def clear_faults(self) -> None:
        """Drop every planned fault, end any outage, put the Date header back on time."""
        self.faults.clear()
        self.date_skew = 0.0

    def count(self, grant_type: Optional[str] = None, client_id: Optional[str] = None) -> int:
        """How many token requests matched (faulted ones included)."""
        with self._lock:
            return sum(1 for r in self.requests
                       if (grant_type is None or r["grant_type"] == grant_type)
                       and (client_id is None or r["client_id"] == client_id))

    def approve(self, user_code: Optional[str] = None, user: str = "alice@contoso.com") -> str:
        """A person approves a device-code sign-in (the newest pending one if no code given)."""
        return self.sessions.approve(user_code, user)

    def deny(self, user_code: Optional[str] = None) -> str:
        """A person declines a device-code sign-in."""
        return self.sessions.deny(user_code)

    def expire(self, user_code: Optional[str] = None) -> str:
        """A device code expires now."""
        return self.sessions.expire(user_code)

    def revoke(self, user: str) -> int:
        """Revoke the user's refresh tokens (password reset, admin action)."""
        return self.sessions.revoke(user)

    def remember(self, *values: Optional[str]) -> None:
        """Note credentials that crossed the wire, so tests can prove none of them leaked."""
        with self._lock:
            self._secrets.update(v for v in values if v)

    def secrets_issued(self) -> List[str]:
        """Every token, assertion and secret this IdP saw or handed out."""
        with self._lock:
            return sorted(self._secrets)

    def log(self, tenant: str, grant_type: str, client_id: str, scope: str,
            status: Optional[int], error: Optional[str] = None, fault: Optional[str] = None) -> None:
        """Record one token request; only names and outcomes, never credentials."""
        with self._lock:
            self.requests.append({"time": time.time(), "tenant": tenant, "grant_type": grant_type,
                                  "client_id": client_id, "scope": scope, "status": status,
                                  "error": error, "fault": fault})

    def issue(self, tenant: str, resource: str, client_id: str, user: Optional[str] = None,
              ) -> Dict[str, Any]:
        """A signed access token and the fields Entra sends with it."""
        now = int(time.time())
        expires_in = random.randint(*self.lifetime)
        claims: Dict[str, Any] = {
            "aud": resource, "iss": self.issuer(tenant), "iat": now, "nbf": now,
            "exp": now + expires_in, "tid": tenant, "ver": "2.0", "appid": client_id,
            "azp": client_id, "uti": uuid.uuid4().hex}
        if user is None:
            app = self.directory.apps.get(client_id)
            oid = app.object_id if app else str(uuid.uuid5(uuid.NAMESPACE_URL, "sp:" + client_id))
            claims.update(oid=oid, sub=oid, idtyp="app", roles=[])
        else:
            claims.update(oid=user_oid(user), sub=user_oid(user), upn=user, name=display_name(user),
                          preferred_username=user, scp="user_impersonation", idtyp="user")
        return {"token_type": "Bearer", "access_token": self.signing_key.sign(claims),
                "expires_in": expires_in, "ext_expires_in": expires_in,
                "refresh_in": expires_in // 2}

    def check_access_token(self, token: str) -> Dict[str, Any]:
        """The claims of an unexpired access token this IdP signed, else JwtError."""
        claims = self.signing_key.verify(token)
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] <= time.time():
            raise jwt.JwtError("token expired")
        return claims

    # -- HTTP ----------------------------------------------------------------------------------
    def __call__(self, request: Request) -> Response:
        """Route one HTTP request."""
        parts = [p for p in request.path.split("/") if p]
        if parts[:1] == ["_emulator"]:
            return self._admin(request, parts[1:])
        if parts and parts[0] in SUBJECTS:
            return self.workload(request, parts)
        if parts == ["devicelogin"]:
            return devicelogin(self, request)
        if len(parts) < 2:
            return text_response(404, "not found")
        tenant, rest = parts[0], parts[1:]
        if rest == ["v2.0", ".well-known", "openid-configuration"]:
            return json_response(200, self._openid_configuration(tenant))
        if rest == ["discovery", "v2.0", "keys"]:
            return json_response(200, self.signing_key.jwks())
        if rest == ["oauth2", "v2.0", "authorize"]:
            return text_response(200, "The emulator signs people in through device code only.")
        if request.method == "POST" and rest == ["oauth2", "v2.0", "token"]:
            return token_endpoint(self, request, tenant, self._stopping)
        if request.method == "POST" and rest == ["oauth2", "v2.0", "devicecode"]:
            return devicecode_endpoint(self, request, tenant)
        return text_response(404, "not found")

    def _openid_configuration(self, tenant: str) -> Dict[str, Any]:
        root = "{}/{}".format(self.base, tenant)
        return {
            "issuer": self.issuer(tenant),
            "authorization_endpoint": root + "/oauth2/v2.0/authorize",
            "token_endpoint": root + "/oauth2/v2.0/token",
            "device_authorization_endpoint": root + "/oauth2/v2.0/devicecode",
            "jwks_uri": root + "/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                      "client_secret_basic"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "tenant_region_scope": "EU", "cloud_instance_name": "emulator",
        }

    def _admin(self, request: Request, rest: List[str]) -> Response:
        try:
            data = json.loads(request.body or b"{}") if request.method == "POST" else {}
            if not isinstance(data, dict):
                raise ValueError("body must be a JSON object")
            action = rest[0] if len(rest) == 1 else ""
            if action == "stats" and request.method == "GET":
                return json_response(200, self.stats())
            if request.method != "POST":
                return text_response(404, "not found")
            if action == "fault":
                self.fail(str(data["kind"]), int(data.get("times", 1)), data.get("retry_after"),
                          data.get("seconds"))
                return json_response(200, {"ok": True})
            if action == "clear":
                self.clear_faults()
                return json_response(200, {"ok": True})
            if action == "approve":
                code = self.approve(data.get("user_code"), data.get("user", "alice@contoso.com"))
                return json_response(200, {"ok": True, "user_code": code})
            if action == "deny":
                return json_response(200, {"ok": True, "user_code": self.deny(data.get("user_code"))})
            if action == "expire":
                return json_response(200, {"ok": True,
                                           "user_code": self.expire(data.get("user_code"))})
            if action == "revoke":
                return json_response(200, {"ok": True, "revoked": self.revoke(str(data["user"]))})
        except (KeyError, ValueError, TypeError) as exc:
            return json_response(400, {"ok": False, "error": str(exc)})
        return text_response(404, "not found")

    def stats(self) -> Dict[str, Any]:
        """Counts and logs for ``GET /_emulator/stats``; no credentials in it."""
        with self._lock:
            requests = list(self.requests)
        by_grant: Dict[str, int] = {}
        for entry in requests:
            by_grant[entry["grant_type"]] = by_grant.get(entry["grant_type"], 0) + 1
        return {"token_requests": len(requests), "by_grant_type": by_grant, "requests": requests,
                "faults": self.faults.pending(), "pending_user_codes": self.sessions.pending(),
                "feed_log": list(self.feed_log)}
