"""``cargo-credential-entra``: a cargo credential provider (protocol v1) in front of the daemon.

cargo (1.74+) runs the provider with ``--cargo-plugin``; the provider says hello
(``{"v":[1]}``), then answers one JSON line per request until stdin closes. ``get`` for a
routed registry index answers ``Bearer <token>``; any other index is ``url-not-supported`` so
cargo asks its next provider. ``login`` and ``logout`` are not ours: the daemon holds tokens.
Standard library only: this runs in every cargo call that reaches an authenticated registry.
"""

from __future__ import annotations

import json
import sys
TYPE_CHECKING = False  # the typing module itself costs milliseconds on every cargo call
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Dict, Optional

from ..client import Client
from ..errors import CredhelperError, NoRoute, RequestError
from .common import GET_TIMEOUT, starter

HELLO = {"v": [1]}
MAX_LINE = 64 * 1024
EXPIRY_MARGIN = 60  # cargo keeps a token until this long before it expires, then asks again


def index_url(request: Dict[str, Any]) -> Optional[str]:
    """The https index URL a request names (``sparse+`` stripped), or None."""
    registry = request.get("registry")
    url = registry.get("index-url") if isinstance(registry, dict) else None
    if not isinstance(url, str):
        return None
    if url.startswith("sparse+"):
        url = url[len("sparse+"):]
    return url if url.lower().startswith("https://") else None


def answer(request: Dict[str, Any], client: Client) -> Dict[str, Any]:
    """The response to one cargo request."""
    if request.get("v") != 1:
        return _error("other", "unsupported credential protocol version {!r}".format(
            str(request.get("v"))[:20]))
    if request.get("kind") != "get":
        return {"Err": {"kind": "operation-not-supported"}}
    url = index_url(request)
    if url is None:
        return {"Err": {"kind": "url-not-supported"}}
    try:
        reply = client.call("get", timeout=GET_TIMEOUT, url=url, **{"for": "cargo"})
    except (NoRoute, RequestError):
        return {"Err": {"kind": "url-not-supported"}}
    except CredhelperError as exc:
        return _error("other", exc.message)
    token = reply.get("token")
    if not isinstance(token, str) or not token or any(c in token for c in "\r\n\0"):
        return _error("other", "the daemon returned an unusable credential")
    ok: Dict[str, Any] = {"kind": "get", "token": "Bearer " + token, "cache": "never",
                          "operation_independent": True}
    expires_on = reply.get("expires_on")
    if isinstance(expires_on, int) and not isinstance(expires_on, bool):
        ok.update(cache="expires", expiration=expires_on - EXPIRY_MARGIN)
    return {"Ok": ok}


def _error(kind: str, message: str) -> Dict[str, Any]:
    return {"Err": {"kind": kind, "message": "credhelper: " + " ".join(message.split())[:300],
                    "caused-by": []}}


def serve(stdin: BinaryIO, stdout: BinaryIO, client: Client) -> int:
    """Say hello, then answer one line per request until cargo closes stdin."""
    _send(stdout, HELLO)
    while True:
        line = stdin.readline(MAX_LINE + 1)
        if not line:
            return 0
        if len(line) > MAX_LINE:
            _send(stdout, _error("other", "request larger than {} bytes".format(MAX_LINE)))
            return 1
        if not line.strip():
            continue
        try:
            request = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            request = None
        if not isinstance(request, dict):
            _send(stdout, _error("other", "request is not a JSON object"))
            continue
        _send(stdout, answer(request, client))


def _send(stdout: BinaryIO, message: Dict[str, Any]) -> None:
    stdout.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    stdout.flush()


def main() -> None:
    """Entry point of ``cargo-credential-entra``."""
    if "--cargo-plugin" not in sys.argv[1:]:
        sys.stderr.write("cargo-credential-entra is a cargo credential provider; set "
                         "credential-provider = \"cargo-credential-entra\" (run by cargo)\n")
        sys.exit(2)
    sys.exit(serve(sys.stdin.buffer, sys.stdout.buffer,
                   Client(timeout=GET_TIMEOUT, starter=starter())))
