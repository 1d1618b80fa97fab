"""The private feed server: git smart HTTP, a PEP 503 simple index (with PyPI's legacy upload
API), an npm registry and a cargo sparse registry.

Every request needs an access token from the emulated IdP for one of the feed audiences, sent
as Basic (any user name, the token as password) or Bearer. The log records who came and what
they got, never the token.
"""

import base64
import dataclasses
import hashlib
import html
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import unquote

from . import jwt, packages, upload
from .crates import CrateIndex
from .npm_registry import NpmRegistry, user_of
from .gitrepos import create_repo, http_backend
from .idp import IdentityProvider
from .web import Request, Response, text_response

FEED_AUDIENCES = frozenset(("499b84ac-1321-427f-aa17-267ca6975798", "api://credhelper-feed"))
REALM = "credhelper-emulator"
OPEN_PREFIX = "/open"  # with ``FeedServer.open_access``, paths under it need no token (benchmarks)


class FeedServer:
    """Serves git repos, Python packages and npm packages from ``root``; thread-safe."""

    def __init__(self, root: Path, idp: IdentityProvider) -> None:
        self.root = root
        self.git_root = root / "git"
        self.git_root.mkdir(parents=True, exist_ok=True)
        self.idp = idp
        self.base = ""                       # set by the Emulator once the port is known
        self.open_access = False             # opt-in: serve OPEN_PREFIX + path without auth
        self.log: List[Dict[str, Any]] = []
        self._lock = threading.Lock()
        self._python: Dict[str, Dict[str, bytes]] = {}      # normalized name -> filename -> data
        self.npm = NpmRegistry()
        self.crates = CrateIndex()

    def __repr__(self) -> str:
        return "FeedServer(base={!r})".format(self.base)

    # -- content -------------------------------------------------------------------------------
    def add_wheel(self, name: str, version: str) -> str:
        """Publish a built wheel; returns its file name."""
        return self._add_python(name, *packages.wheel(name, version))

    def add_sdist(self, name: str, version: str) -> str:
        """Publish a built sdist; returns its file name."""
        return self._add_python(name, *packages.sdist(name, version))

    def _add_python(self, name: str, filename: str, data: bytes) -> str:
        with self._lock:
            self._python.setdefault(packages.normalize(name), {})[filename] = data
        return filename

    def add_npm(self, name: str, version: str) -> None:
        """Publish an npm package version (``name`` may be ``@scope/name``)."""
        self.npm.add(name, version)

    def add_crate(self, name: str, version: str) -> None:
        """Publish a library crate in the cargo sparse registry (``/cargo/``)."""
        self.crates.add(name, version)

    def add_git_repo(self, name: str) -> Path:
        """Create a bare repo with a README commit; returns its path."""
        return create_repo(self.git_root, name if name.endswith(".git") else name + ".git")

    # -- HTTP ----------------------------------------------------------------------------------
    def __call__(self, request: Request) -> Response:
        """Authenticate, route, answer, log."""
        path = request.path
        prefix = ""
        kind: Optional[str]
        claims: Optional[dict]
        if self.open_access and path.startswith(OPEN_PREFIX + "/"):
            # the same content with no auth at all: a baseline for measuring what auth costs
            kind, claims, reason, prefix = "open", {}, "", OPEN_PREFIX
            request = dataclasses.replace(request, path=request.path[len(OPEN_PREFIX):])
        else:
            kind, claims, reason = self._authenticate(request)
        if claims is None:
            response = text_response(401, "Unauthorized: {}\n".format(reason))
            response.headers += [
                ("WWW-Authenticate", 'Basic realm="{}"'.format(REALM)),
                ("WWW-Authenticate", 'Bearer authorization_uri="{}/{}/oauth2/v2.0/authorize"'
                 .format(self.idp.base, "common"))]
        else:
            response = self._route(request, claims, prefix)
        entry = {"time": time.time(), "method": request.method, "path": path,
                 "auth": kind, "sub": (claims or {}).get("sub"), "upn": (claims or {}).get("upn"),
                 "appid": (claims or {}).get("appid"), "status": response.status}
        if claims is None:
            entry["reason"] = reason
        with self._lock:
            self.log.append(entry)
        return response

    def _authenticate(self, request: Request) -> Tuple[Optional[str], Optional[dict], str]:
        scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() == "basic":
            kind = "basic"
            try:
                token = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
            except ValueError:
                return kind, None, "malformed Basic credentials"
        elif scheme.lower() == "bearer":
            kind, token = "bearer", value.strip()
        else:
            return None, None, "no credentials"
        try:
            claims = self.idp.check_access_token(token)
        except jwt.JwtError as exc:
            return kind, None, "token rejected ({})".format(exc)
        if claims.get("aud") not in FEED_AUDIENCES:
            return kind, None, "token audience {!r} is not this feed".format(claims.get("aud"))
        return kind, claims, ""

    def _route(self, request: Request, claims: dict, prefix: str = "") -> Response:
        parts = request.path.split("/", 2)       # "", "git"|"pypi"|"npm", rest
        area, rest = (parts[1], parts[2] if len(parts) > 2 else "") if len(parts) > 1 else ("", "")
        user = str(user_of(claims) or "anonymous")
        if area == "git":
            return http_backend(self.git_root, request, "/" + unquote(rest), user)
        if area == "pypi" and request.method in ("GET", "HEAD"):
            return self._pypi(rest)
        if area == "pypi" and request.method == "POST" and rest.strip("/") == "legacy":
            return self._pypi_upload(request)
        if area == "npm":
            return self.npm.handle(request, rest, "{}{}/npm/".format(self.base, prefix), user)
        if area == "cargo" and request.method in ("GET", "HEAD"):
            return self.crates.answer(unquote(rest), self.base + prefix)
        return text_response(404, "not found")

    def _pypi(self, rest: str) -> Response:
        bits = [b for b in rest.split("/") if b]
        with self._lock:
            projects = {name: dict(files) for name, files in self._python.items()}
        if bits == ["simple"]:
            links = "".join('<a href="{0}/">{0}</a>\n'.format(html.escape(n)) for n in sorted(projects))
            return _html("Simple index", links)
        if len(bits) == 2 and bits[0] == "simple":
            files = projects.get(packages.normalize(unquote(bits[1])))
            if files is None:
                return text_response(404, "no such project")
            name = packages.normalize(unquote(bits[1]))
            links = "".join('<a href="../../files/{}/{}#sha256={}">{}</a>\n'.format(
                name, f, hashlib.sha256(d).hexdigest(), html.escape(f)) for f, d in sorted(files.items()))
            return _html("Links for " + name, links)
        if len(bits) == 3 and bits[0] == "files":
            data = projects.get(bits[1], {}).get(unquote(bits[2]))
            if data is not None:
                return Response(200, data, [("Content-Type", "application/octet-stream")])
        return text_response(404, "not found")

    def _pypi_upload(self, request: Request) -> Response:
        """PyPI's legacy upload API: the file joins the simple index; re-uploading one is 400."""
        try:
            name, _version, filename, data = upload.read_upload(
                request.headers.get("Content-Type", ""), request.body)
        except upload.UploadError as exc:
            return text_response(400, "Bad Request: {}\n".format(exc))
        with self._lock:
            files = self._python.setdefault(name, {})
            if filename in files:
                return text_response(400, "Bad Request: File already exists ({})\n".format(filename))
            files[filename] = data
        return text_response(200, "OK\n")


def _html(title: str, body: str) -> Response:
    page = ('<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0">'
            "<title>{}</title></head><body>\n{}</body></html>\n".format(html.escape(title), body))
    return Response(200, page.encode(), [("Content-Type", "text/html; charset=utf-8")])


def default_content(feeds: FeedServer) -> None:
    """What the feed holds at start: demo.git, hello-private for pip, two npm packages, a crate."""
    feeds.add_git_repo("demo.git")
    feeds.add_wheel("hello-private", "1.0.0")
    feeds.add_sdist("hello-private", "1.0.0")
    feeds.add_npm("hello-private", "1.0.0")
    feeds.add_npm("@contoso/hello-scoped", "1.0.0")
    feeds.add_crate("hello-private", "1.0.0")
