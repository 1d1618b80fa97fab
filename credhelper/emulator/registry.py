"""A container registry shaped like Azure Container Registry: token exchange and a ``/v2/`` API.

ACR's flow, as ``az acr login`` and docker use it:

1. ``POST /oauth2/exchange`` (grant_type=access_token, service, access_token=<Entra token>)
   answers ``{"refresh_token": ...}``: a registry refresh token, used by clients as the password
   of the user ``00000000-0000-0000-0000-000000000000``.
2. ``/oauth2/token`` trades that refresh token (POST grant_type=refresh_token, or GET with Basic
   auth) for a registry access token scoped to ``repository:NAME:pull``.
3. ``/v2/...`` wants that access token as Bearer; without it, 401 and
   ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``.

Tokens are JWTs signed by a key of the registry's own. The log holds names and outcomes only.
"""

import base64
import hashlib
import json
import secrets
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from . import ca, jwt
from .idp import IdentityProvider
from .web import Request, Response, json_response

NULL_USER = "00000000-0000-0000-0000-000000000000"
# Entra audiences ACR takes at /oauth2/exchange (with or without the trailing slash)
EXCHANGE_AUDIENCES = frozenset(("https://containerregistry.azure.net", "https://management.azure.com",
                                "https://management.azure.com/", "https://management.core.windows.net/"))
REFRESH_LIFETIME = 3 * 3600
ACCESS_LIFETIME = 75 * 60
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"


class Registry:
    """Serves images from memory behind ACR's token flow; thread-safe."""

    def __init__(self, idp: IdentityProvider) -> None:
        self.idp = idp
        self.key = jwt.SigningKey(ca.new_key())
        self.base = ""                       # set by the Emulator once the port is known
        self.log: List[Dict[str, Any]] = []
        self._lock = threading.Lock()
        self._blobs: Dict[str, bytes] = {}
        self._manifests: Dict[Tuple[str, str], bytes] = {}   # (repository, tag or digest) -> body

    def __repr__(self) -> str:
        return "Registry(base={!r})".format(self.base)

    @property
    def host(self) -> str:
        """``host:port``, what docker calls the registry (and what ACR calls the service)."""
        return self.base.split("://", 1)[1]

    # -- content -------------------------------------------------------------------------------
    def add_image(self, repository: str, tag: str) -> str:
        """Publish a one-layer image; returns its manifest digest."""
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "config": {"Labels": {"repository": repository, "tag": tag}},
                             "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        layer = _layer(repository, tag)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": _digest(config)},
            "layers": [{"mediaType": LAYER_TYPE, "size": len(layer), "digest": _digest(layer)}],
        }, indent=3).encode()
        digest = _digest(manifest)
        with self._lock:
            self._blobs[_digest(config)] = config
            self._blobs[_digest(layer)] = layer
            self._manifests[(repository, tag)] = self._manifests[(repository, digest)] = manifest
        return digest

    # -- HTTP ----------------------------------------------------------------------------------
    def __call__(self, request: Request) -> Response:
        """Route one request and log its outcome (never a credential)."""
        path = request.path
        if path == "/oauth2/exchange":
            response, who = self._exchange(request)
        elif path == "/oauth2/token":
            response, who = self._token(request)
        elif path == "/v2" or path.startswith("/v2/"):
            response, who = self._v2(request)
        else:
            response, who = json_response(404, _errors("NOT_FOUND", "no such endpoint")), None
        with self._lock:
            self.log.append({"time": time.time(), "method": request.method, "path": path,
                             "sub": who, "status": response.status})
        return response

    def _exchange(self, request: Request) -> Tuple[Response, Optional[str]]:
        form = request.form()
        if request.method != "POST" or form.get("grant_type") != "access_token":
            return json_response(400, _errors("UNSUPPORTED", "grant_type must be access_token")), None
        if form.get("service") != self.host:
            return json_response(400, _errors("DENIED", "service must be {}".format(self.host))), None
        try:
            claims = self.idp.check_access_token(form.get("access_token", ""))
        except jwt.JwtError as exc:
            return json_response(401, _errors("UNAUTHORIZED", "access token rejected ({})".format(
                exc))), None
        if claims.get("aud") not in EXCHANGE_AUDIENCES:
            return json_response(401, _errors("UNAUTHORIZED", "audience {!r} is not ACR's".format(
                claims.get("aud")))), None
        now = int(time.time())
        subject = str(claims.get("oid") or claims.get("sub"))
        refresh = self.key.sign({"jti": secrets.token_hex(8), "sub": subject, "aud": self.host,
                                 "iat": now, "nbf": now, "exp": now + REFRESH_LIFETIME,
                                 "grant_type": "refresh_token", "tenant": claims.get("tid")})
        self.idp.remember(refresh)
        return json_response(200, {"refresh_token": refresh}), subject

    def _token(self, request: Request) -> Tuple[Response, Optional[str]]:
        if request.method == "POST":
            form = request.form()
            if form.get("grant_type") != "refresh_token":
                return json_response(400, _errors("UNSUPPORTED", "grant_type must be refresh_token")), None
            refresh, service, scope = form.get("refresh_token", ""), form.get("service"), form.get("scope", "")
        else:
            scheme, _, value = request.headers.get("Authorization", "").partition(" ")
            user, refresh = "", ""
            if scheme.lower() == "basic":
                try:
                    user, _, refresh = base64.b64decode(value.strip()).decode().partition(":")
                except ValueError:
                    pass
            if user != NULL_USER:
                return json_response(401, _errors("UNAUTHORIZED", "Basic auth with the user {} "
                                                                  "and a refresh token".format(NULL_USER))), None
            service, scope = request.query.get("service"), request.query.get("scope", "")
        if service != self.host:
            return json_response(400, _errors("DENIED", "service must be {}".format(self.host))), None
        try:
            claims = self.key.verify(refresh)
        except jwt.JwtError as exc:
            return json_response(401, _errors("UNAUTHORIZED", "refresh token rejected ({})".format(
                exc))), None
        if claims.get("grant_type") != "refresh_token" or claims.get("exp", 0) <= time.time():
            return json_response(401, _errors("UNAUTHORIZED", "refresh token expired")), None
        now = int(time.time())
        access = self.key.sign({"sub": claims["sub"], "aud": self.host, "iat": now, "nbf": now,
                                "exp": now + ACCESS_LIFETIME, "grant_type": "access_token",
                                "access": _access(scope)})
        self.idp.remember(access)
        # docker's distribution client reads "token" (GET) or "access_token" (POST)
        return json_response(200, {"access_token": access, "token": access,
                                   "expires_in": ACCESS_LIFETIME}), claims["sub"]

    def _v2(self, request: Request) -> Tuple[Response, Optional[str]]:
        parts = request.path[len("/v2/"):].split("/")
        if len(parts) >= 3 and parts[-2] in ("manifests", "blobs"):
            repository, kind, reference = "/".join(parts[:-2]), parts[-2], parts[-1]
            scope = "repository:{}:pull".format(repository)
        else:
            repository, kind, reference, scope = "", "", "", ""
        claims = self._bearer(request)
        if claims is None or (scope and not _allows(claims, repository)):
            challenge = 'Bearer realm="{0}/oauth2/token",service="{1}"'.format(self.base, self.host)
            if scope:
                challenge += ',scope="{}"'.format(scope)
            response = json_response(401, _errors("UNAUTHORIZED", "authentication required"))
            response.headers.append(("WWW-Authenticate", challenge))
            return response, None
        subject = claims.get("sub")
        headers = [("Docker-Distribution-API-Version", "registry/2.0")]
        if not kind:
            return (json_response(200, {}, tuple(headers)) if request.path in ("/v2", "/v2/")
                    else json_response(404, _errors("NAME_UNKNOWN", "not found"))), subject
        with self._lock:
            body = (self._manifests.get((repository, reference)) if kind == "manifests"
                    else self._blobs.get(reference))
        if body is None:
            code = "MANIFEST_UNKNOWN" if kind == "manifests" else "BLOB_UNKNOWN"
            return json_response(404, _errors(code, "not found")), subject
        content_type = MANIFEST_TYPE if kind == "manifests" else "application/octet-stream"
        headers += [("Content-Type", content_type), ("Docker-Content-Digest", _digest(body))]
        return Response(200, body, headers), subject

    def _bearer(self, request: Request) -> Optional[Dict[str, Any]]:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            claims = self.key.verify(value.strip())
        except jwt.JwtError:
            return None
        if claims.get("grant_type") != "access_token" or claims.get("exp", 0) <= time.time():
            return None
        return claims


def _access(scope: str) -> List[Dict[str, Any]]:
    """The ``access`` claim for the scopes asked (``repository:NAME:pull`` each, space separated)."""
    granted = []
    for item in scope.split():
        kind, _, rest = item.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind == "repository" and name:
            granted.append({"type": kind, "name": name,
                            "actions": [a for a in actions.split(",") if a == "pull"]})
    return granted


def _allows(claims: Dict[str, Any], repository: str) -> bool:
    return any(entry.get("name") == repository and "pull" in entry.get("actions", ())
               for entry in claims.get("access") or ())


def _errors(code: str, message: str) -> Dict[str, Any]:
    return {"errors": [{"code": code, "message": message}]}


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(repository: str, tag: str) -> bytes:
    """A tiny gzipped tar layer holding one file that names the image."""
    import gzip
    import io
    import tarfile

    data = "{}:{}\n".format(repository, tag).encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime = len(data), 0
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)
