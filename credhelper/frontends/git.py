"""``git-credential-entra``: git's credential-helper protocol in front of the daemon.

git runs ``git-credential-entra get|store|erase`` with ``key=value`` lines on stdin
(gitcredentials(7)). stdout carries protocol only; people's messages go to stderr, one line.
This runs in every git process that needs a credential: standard library only.
"""

import sys
TYPE_CHECKING = False  # the typing module itself costs milliseconds on every git call
if TYPE_CHECKING:
    from typing import BinaryIO, Dict, List, Optional, TextIO, Tuple

    Attributes = Tuple[Dict[str, str], Dict[str, List[str]]]

from ..client import Client
from ..errors import (
    AmbiguousRoute, AuthFailed, CredhelperError, DaemonUnavailable, LoginFailed, NoRoute,
    NotSignedIn, RequestError,
)
from .common import GET_TIMEOUT, say, starter

MAX_INPUT = 64 * 1024
_UNSAFE_VALUE = ("\n", "\r", "\0")  # in a value, these would inject protocol lines
# Characters git's host attribute never legitimately holds; seeing one means the input is not
# a URL we should build and send anywhere.
_BAD_HOST_CHARS = frozenset("/\\@?#%") | frozenset(chr(c) for c in range(0x21))
_PATH_SAFE = frozenset(b"/:@!$&'()*+,;=-._~ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                       b"0123456789")


def parse(data: bytes) -> "Attributes":
    """Read git's ``key=value`` lines (until a blank line) into scalars and ``key[]`` lists."""
    scalars: "Dict[str, str]" = {}
    lists: "Dict[str, List[str]]" = {}
    for raw in data.decode("utf-8", errors="surrogateescape").split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line:
            break
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key.endswith("[]"):
            # git's rule for multi-valued keys: an empty value clears what came before
            if value:
                lists.setdefault(key[:-2], []).append(value)
            else:
                lists.pop(key[:-2], None)
        elif key == "url":
            # gitcredentials(7): url= stands for its parts; keys read after it still override
            scalars.update(_url_parts(value))
        else:
            scalars[key] = value
    return scalars, lists


def _url_parts(url: str) -> "Dict[str, str]":
    nothing = {"protocol": "", "host": "", "path": ""}
    if url != url.strip() or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        # urlsplit silently drops tabs, newlines and surrounding blanks (as browsers do), which
        # would launder a URL the daemon refuses into one it accepts: stand for nothing instead
        return nothing
    import urllib.parse  # only for url=, which git itself rarely sends

    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # e.g. a host that NFKC-normalises into '/', '?', '#' or '@'
        return nothing
    found = {"protocol": parts.scheme, "host": parts.netloc.rpartition("@")[2]}
    # surrogateescape, not U+FFFD: bytes that are not UTF-8 must reach the daemon as they came
    path = urllib.parse.unquote(parts.path.lstrip("/"), errors="surrogateescape")
    if path:
        found["path"] = path
    return found


def has_dot_segment(path: str) -> bool:
    """True when a path as git hands it to a helper holds a ``.`` or ``..`` segment.

    git decodes ``%2F`` and ``%2e`` before it calls a helper, so ``evil%2F..%2Fcontoso/x``
    arrives as ``evil/../contoso/x``: it normalises into ``/contoso/`` while the request on the
    wire goes elsewhere. git never needs a dot segment (it sends them on the wire as they are),
    so every path that came through git (the ``entra`` helper and the cache-protocol socket) is
    refused when it holds one. Use this one function for both.
    """
    return any(segment in (".", "..") for segment in path.split("/"))


def target_url(scalars: "Dict[str, str]") -> "Optional[str]":
    """The https URL git is asking about, or None when it is not one we could serve."""
    if scalars.get("protocol", "").lower() != "https":
        return None
    host = scalars.get("host", "")
    if not host or any(ch in _BAD_HOST_CHARS for ch in host):
        return None
    if has_dot_segment(scalars.get("path", "")):
        return None
    # git hands us the path decoded; quote it back so the daemon sees a well-formed URL
    return f"https://{host}/{quote_path(scalars.get('path', '').lstrip('/'))}"


def quote_path(path: str) -> str:
    """Percent-encode a decoded path (bytes that are not UTF-8 travel as surrogate escapes)."""
    return "".join(chr(b) if b in _PATH_SAFE else f"%{b:02X}"
                   for b in path.encode("utf-8", "surrogateescape"))


def render(pairs: "List[Tuple[str, str]]") -> bytes:
    """``key=value`` lines as git reads them from a helper."""
    return "".join(f"{key}={value}\n" for key, value in pairs).encode("utf-8")


def _emit(stdout: "BinaryIO", pairs: "List[Tuple[str, str]]") -> None:
    stdout.write(render(pairs))
    stdout.flush()


def credential_pairs(reply: "Dict[str, object]", lists: "Dict[str, List[str]]"
                     ) -> "Optional[List[Tuple[str, str]]]":
    """What git is told for a granted ``get`` reply; None when the credential is unusable.

    Both git paths answer through this: the ``entra`` helper and the daemon's cache-protocol
    socket.
    """
    username, token = reply.get("username"), reply.get("token")
    if not isinstance(username, str) or not isinstance(token, str) or not token or any(
        bad in value for value in (username, token) for bad in _UNSAFE_VALUE
    ):
        return None  # a newline would let the value inject protocol lines; never pass it on
    expires_on = reply.get("expires_on")
    expiry = [("password_expiry_utc", str(int(expires_on)))] if isinstance(
        expires_on, (int, float)) and not isinstance(expires_on, bool) else []
    if "authtype" in lists.get("capability", []):
        # git >= 2.46 sends the pre-encoded credential as-is; ephemeral keeps it out of
        # every storing helper.
        return [("capability[]", "authtype"), ("authtype", "Bearer"),
                ("credential", token), ("ephemeral", "1")] + expiry
    return [("username", username), ("password", token)] + expiry


def _get(url: str, lists: "Dict[str, List[str]]", stdout: "BinaryIO", stderr: "TextIO",
         client: "Client") -> int:
    try:
        reply = client.get(url, "git", timeout=GET_TIMEOUT)
    except (NoRoute, RequestError):
        # Not our URL (or one the daemon refuses to consider): stay silent so git asks
        # the next helper or the user, exactly as if we were not configured.
        return 0
    except AmbiguousRoute:
        say(stderr, "several accounts serve this host; run: credhelper configure git")
        return 0
    except DaemonUnavailable as exc:
        # No quit=1 here: without the daemon we cannot tell whether this host is ours, and
        # credential.helper=entra may sit next to other helpers for other hosts. Letting git
        # go on keeps those working; for our hosts git then prompts (or fails with
        # GIT_TERMINAL_PROMPT=0) after our one-line hint.
        say(stderr, exc.message)
        return 0
    except (NotSignedIn, AuthFailed, LoginFailed) as exc:
        # The daemon knows the URL is ours and cannot serve it: stop git from prompting for
        # a password that does not exist and from asking helpers that would hand a stale one.
        say(stderr, exc.message)
        _emit(stdout, [("quit", "1")])
        return 0
    except CredhelperError as exc:
        say(stderr, exc.message)
        return 0

    pairs = credential_pairs(reply, lists)
    if pairs is None:  # Client.get checked already; this stays for the git socket's sake
        say(stderr, "the daemon returned an unusable credential; nothing sent to git")
        return 0
    _emit(stdout, pairs)
    return 0


def _erase(url: str, scalars: "Dict[str, str]", client: "Client") -> int:
    offered = scalars.get("credential") or scalars.get("password")
    if not offered:
        return 0
    import hmac
    # Ask for our current token first and compare here, so another host's password that git
    # is erasing never travels to the daemon.
    try:
        token = client.get(url, "git", timeout=GET_TIMEOUT)["token"]
        if hmac.compare_digest(
                token.encode("utf-8", "surrogateescape"), offered.encode("utf-8", "surrogateescape")):
            client.invalidate(url, token)
    except CredhelperError:
        pass  # erase is advisory; a daemon that cannot answer holds nothing to drop
    return 0


def handle(action: str, stdin: "BinaryIO", stdout: "BinaryIO", stderr: "TextIO",
           client: "Client") -> int:
    """Run one helper action against the daemon; returns the exit status."""
    data = stdin.read(MAX_INPUT + 1)
    if action not in ("get", "erase") or len(data) > MAX_INPUT:
        return 0  # store is ours to ignore: the daemon holds tokens; unknown actions likewise
    scalars, lists = parse(data)
    url = target_url(scalars)
    if url is None:
        return 0
    if action == "get":
        return _get(url, lists, stdout, stderr, client)
    return _erase(url, scalars, client)


def main() -> None:
    """Entry point of ``git-credential-entra``."""
    if len(sys.argv) < 2:
        sys.stderr.write("usage: git-credential-entra get|store|erase  (run by git)\n")
        sys.exit(2)
    # the first git call after login or boot starts the daemon (once, under a lock;
    # CREDHELPER_NO_AUTOSTART=1 turns it off)
    sys.exit(handle(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer, sys.stderr,
                    Client(timeout=GET_TIMEOUT, starter=starter())))
