"""A cargo sparse registry (RFC 2789) that requires auth (RFC 3139), for the feed server.

Under ``/cargo/``: ``config.json`` with ``auth-required: true``, one index file per crate at
cargo's path (``1/a``, ``2/ab``, ``3/a/abc``, ``he/ll/hello``), and ``.crate`` downloads. The feed
server authenticates every request before it gets here, as an authenticated registry must
(cargo first asks for ``config.json`` without a token and sends one after the 401).
"""

import hashlib
import io
import json
import tarfile
import threading
from typing import Dict, Optional, Tuple

from .web import Response, json_response, text_response

_MTIME = 1704067200


class CrateIndex:
    """Crates held in memory: name -> version -> .crate bytes; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._crates: Dict[str, Dict[str, bytes]] = {}

    def __repr__(self) -> str:
        return "CrateIndex({} crates)".format(len(self._crates))

    def add(self, name: str, version: str) -> None:
        """Publish a library crate with one function, ``hello()``."""
        with self._lock:
            self._crates.setdefault(name.lower(), {})[version] = crate(name, version)

    def answer(self, rest: str, base: str) -> Response:
        """Serve ``/cargo/<rest>`` of the feed at ``base``."""
        if rest == "config.json":
            return json_response(200, {"dl": base + "/cargo/api/v1/crates",
                                       "api": base + "/cargo", "auth-required": True})
        bits = rest.split("/")
        if len(bits) == 6 and bits[:3] == ["api", "v1", "crates"] and bits[5] == "download":
            data = self._get(bits[3], bits[4])
            if data is not None:
                return Response(200, data, [("Content-Type", "application/x-tar")])
            return text_response(404, "no such crate version")
        name = bits[-1].lower()
        if bits[:-1] != list(index_dir(name)):
            return text_response(404, "not found")
        with self._lock:
            versions = dict(self._crates.get(name, {}))
        if not versions:
            return text_response(404, "no such crate")
        lines = [json.dumps({"name": name, "vers": v, "deps": [], "features": {},
                             "cksum": hashlib.sha256(d).hexdigest(), "yanked": False, "v": 1})
                 for v, d in sorted(versions.items())]
        return text_response(200, "\n".join(lines) + "\n")

    def _get(self, name: str, version: str) -> Optional[bytes]:
        with self._lock:
            return self._crates.get(name.lower(), {}).get(version)


def index_dir(name: str) -> Tuple[str, ...]:
    """The directories cargo puts a crate's index file in."""
    if len(name) <= 2:
        return (str(len(name)),)
    if len(name) == 3:
        return ("3", name[0])
    return (name[:2], name[2:4])


def crate(name: str, version: str) -> bytes:
    """A ``.crate``: a gzipped tar of ``NAME-VERSION/`` with Cargo.toml and src/lib.rs."""
    import gzip

    files = {
        "Cargo.toml": '[package]\nname = "{}"\nversion = "{}"\nedition = "2021"\n'
                      'description = "from the credhelper emulator"\nlicense = "MIT"\n'.format(
                          name, version),
        "src/lib.rs": 'pub fn hello() -> &\'static str {{ "{} {}" }}\n'.format(name, version),
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo("{}-{}/{}".format(name, version, path))
            info.size, info.mtime, info.mode = len(data), _MTIME, 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)
