"""``docker-credential-entra``: docker's credential-helper protocol in front of the daemon.

docker (and skopeo, buildah, podman, crane: anything that reads ``credHelpers`` in the docker
config) runs ``docker-credential-entra get|list|store|erase|version``. ``get`` reads a registry
host on stdin and prints ``{"ServerURL", "Username", "Secret"}``: for a routed registry, the
daemon's registry refresh token (ACR's ``/oauth2/exchange``) under the user
``00000000-0000-0000-0000-000000000000``. stdout carries protocol only; people's messages go to
stderr. Standard library only: this runs on every pull.
"""

from __future__ import annotations

import sys
TYPE_CHECKING = False  # the typing module itself costs milliseconds on every docker call
if TYPE_CHECKING:
    from typing import BinaryIO, Dict, Optional, TextIO

from .. import __version__, flatjson
from ..client import Client
from ..errors import CredhelperError, NoRoute, RequestError
from .common import GET_TIMEOUT, say, starter

MAX_INPUT = 64 * 1024
# docker's client recognises this exact text (credentials.errCredentialsNotFoundMessage) as
# "nothing stored here" and goes on without credentials
NOT_FOUND = "credentials not found in native keychain"
_BAD_HOST_CHARS = frozenset("/\\@?#%") | frozenset(chr(c) for c in range(0x21)) | {chr(0x7F)}
_UNSAFE = ("\n", "\r", "\0")


def registry_host(server_url: str) -> Optional[str]:
    """The ``host[:port]`` docker means by ``server_url`` (a bare host or an https URL)."""
    text = server_url.strip()
    if "://" in text:
        scheme, _, text = text.partition("://")
        if scheme.lower() != "https":
            return None
    host = text.split("/", 1)[0].lower()
    if not host or any(ch in _BAD_HOST_CHARS for ch in host):
        return None
    return host[:-4] if host.endswith(":443") else host


def _not_found(stdout: BinaryIO) -> int:
    stdout.write((NOT_FOUND + "\n").encode())
    stdout.flush()
    return 1


def _get(server_url: str, stdout: BinaryIO, stderr: TextIO, client: Client) -> int:
    host = registry_host(server_url)
    if host is None:
        return _not_found(stdout)
    try:
        reply = client.call("registry_get", timeout=GET_TIMEOUT, url="https://{}/".format(host),
                            **{"for": "docker"})
    except (NoRoute, RequestError):
        return _not_found(stdout)  # not ours: docker goes on as if we were not configured
    except CredhelperError as exc:
        say(stderr, exc.message)
        return _not_found(stdout)
    username, token = reply.get("username"), reply.get("token")
    if not isinstance(username, str) or not isinstance(token, str) or not token or any(
            bad in value for value in (username, token) for bad in _UNSAFE):
        say(stderr, "the daemon returned an unusable credential; nothing sent to docker")
        return _not_found(stdout)
    answer = {"ServerURL": server_url.strip(), "Username": username, "Secret": token}
    stdout.write(_dumps(answer).encode() + b"\n")
    stdout.flush()
    return 0


def _dumps(message: Dict[str, str]) -> str:
    # flatjson spells a flat object of strings exactly as json would, without importing json
    # (and re, enum) on every pull
    text = flatjson.dumps(message)
    assert text is not None  # only strings go in
    return text


def _list(stdout: BinaryIO, stderr: TextIO, client: Client) -> int:
    try:
        hosts = client.call("status").get("registries") or {}
    except CredhelperError as exc:
        say(stderr, exc.message)
        hosts = {}
    stdout.write(_dumps({str(h): str(u) for h, u in dict(hosts).items()}).encode() + b"\n")
    stdout.flush()
    return 0


def handle(action: str, stdin: BinaryIO, stdout: BinaryIO, stderr: TextIO, client: Client) -> int:
    """Run one helper action against the daemon; returns the exit status."""
    if action == "version":
        stdout.write("docker-credential-entra (credhelper) {}\n".format(__version__).encode())
        return 0
    if action == "list":
        return _list(stdout, stderr, client)
    data = stdin.read(MAX_INPUT + 1)
    if action in ("store", "erase"):
        # The daemon holds the credentials and trades them itself: what docker login stores
        # and docker logout erases is not ours to keep, so both succeed and keep nothing.
        return 0
    if action != "get":
        say(stderr, "unknown action {!r}; expected get, list, store, erase or version".format(
            action[:40]))
        return 1
    if len(data) > MAX_INPUT:
        return _not_found(stdout)
    return _get(data.decode("utf-8", "replace"), stdout, stderr, client)


def main() -> None:
    """Entry point of ``docker-credential-entra``."""
    if len(sys.argv) < 2:
        sys.stderr.write("usage: docker-credential-entra get|list|store|erase|version  "
                         "(run by docker)\n")
        sys.exit(2)
    sys.exit(handle(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer, sys.stderr,
                    Client(timeout=GET_TIMEOUT, starter=starter())))
