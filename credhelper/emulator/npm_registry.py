"""The emulator's npm registry: packuments, tarballs, ``npm publish``, ``whoami`` and ``ping``.

The feed server authenticates every request before it gets here, so this module only speaks the
registry's wire format: the packument (with ``time``, which yarn berry's age gate reads), the
tarball, the publish document npm ``PUT``s (versions plus base64 ``_attachments``), and the
``/-/whoami`` and ``/-/ping`` endpoints npm and yarn call.
"""

import base64
import binascii
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional
from urllib.parse import unquote

from . import packages
from .web import Request, Response, json_response

# When the packages the emulator starts with were "published": old enough for any age gate
# (yarn berry quarantines versions younger than a day by default).
SEEDED = 1700000000.0


@dataclass(frozen=True)
class Version:
    """One published version: its tarball, manifest fields and publish time."""

    data: bytes
    manifest: Dict[str, Any]
    published: float


def _iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(stamp))


def _version_key(version: str) -> tuple:
    return tuple(int(x) if x.isdigit() else 0 for x in version.split("-")[0].split("."))


class NpmRegistry:
    """Packages by name (``@scope/name`` allowed); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._packages: Dict[str, Dict[str, Version]] = {}

    def add(self, name: str, version: str, published: float = SEEDED) -> None:
        """Publish a generated package version."""
        manifest = {"name": name, "version": version, "main": "index.js"}
        with self._lock:
            self._packages.setdefault(name, {})[version] = Version(
                packages.npm_tarball(name, version), manifest, published)

    def versions(self, name: str) -> Dict[str, Version]:
        """The published versions of ``name`` (a copy)."""
        with self._lock:
            return dict(self._packages.get(name, {}))

    def handle(self, request: Request, rest: str, base: str, user: str) -> Response:
        """Answer one registry request; ``base`` is the registry URL tarball links start with."""
        path = unquote(rest).strip("/")
        if path == "-/whoami" and request.method in ("GET", "HEAD"):
            return json_response(200, {"username": user})
        if path == "-/ping" and request.method in ("GET", "HEAD"):
            return json_response(200, {})
        if request.method == "PUT" and "/-/" not in path:
            return self._publish(path, request.body)
        if request.method not in ("GET", "HEAD"):
            return json_response(405, {"error": "method not allowed"})
        name, _, tarball = path.partition("/-/")
        versions = self.versions(name)
        if not versions:
            return json_response(404, {"error": "Not found"})
        if tarball:
            for version, entry in versions.items():
                if tarball == "{}-{}.tgz".format(name.split("/")[-1], version):
                    return Response(200, entry.data, [("Content-Type", "application/octet-stream")])
            return json_response(404, {"error": "Not found"})
        return json_response(200, self._packument(name, versions, base))

    def _packument(self, name: str, versions: Dict[str, Version], base: str) -> Dict[str, Any]:
        latest = max(versions, key=_version_key)
        docs, times = {}, {}
        for version, entry in versions.items():
            url = "{}{}/-/{}-{}.tgz".format(base, name, name.split("/")[-1], version)
            docs[version] = dict(entry.manifest, name=name, version=version,
                                 dist=dict(packages.npm_integrity(entry.data), tarball=url))
            times[version] = _iso(entry.published)
        times["created"] = min(times.values())
        times["modified"] = max(times.values())
        return {"_id": name, "name": name, "dist-tags": {"latest": latest}, "versions": docs,
                "time": times}

    def _publish(self, name: str, body: bytes) -> Response:
        """``npm publish``: one new version and its tarball; an existing version is refused."""
        try:
            doc = json.loads(body)
            (version, manifest), = doc["versions"].items()
            (attachment,) = doc["_attachments"].values()
            data = base64.b64decode(attachment["data"], validate=True)
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            return json_response(400, {"error": "a publish document has one version and its tarball"})
        if doc.get("name") != name or not isinstance(manifest, dict) or manifest.get("name") != name:
            return json_response(400, {"error": "the document's name is not the URL's"})
        if data[:2] != b"\x1f\x8b":
            return json_response(400, {"error": "the attachment is not a gzipped tarball"})
        expected = packages.npm_integrity(data)["integrity"]
        dist = manifest.get("dist") or {}
        if dist.get("integrity") not in (None, expected):
            return json_response(400, {"error": "integrity does not match the tarball"})
        kept = {k: v for k, v in manifest.items() if not k.startswith("_") and k != "dist"}
        with self._lock:
            known = self._packages.setdefault(name, {})
            if version in known:
                return json_response(403, {"error": "cannot publish over the previously published "
                                                    "version {}".format(version)})
            known[version] = Version(data, kept, time.time())
        return json_response(201, {"ok": True, "id": name, "rev": "1-" + version})

    def __repr__(self) -> str:
        return "NpmRegistry({} packages)".format(len(self._packages))


def user_of(claims: Dict[str, Any]) -> Optional[str]:
    """Who a token names, as ``whoami`` shows it."""
    return claims.get("upn") or claims.get("appid") or claims.get("sub")
