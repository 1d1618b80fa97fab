"""``credhelper-keyring``: the ``keyring`` command line pip and uv run, answered by the daemon.

pip's ``--keyring-provider subprocess`` runs ``keyring --mode=creds --output=json get URL [USER]``
(pip 26.2 and later) or ``keyring get URL USER`` (earlier pips, and uv); uv's does the latter.
The real ``keyring`` command imports keyring and scans every installed distribution for backends
on each call; this one imports only the standard library and credhelper's wire modules, so a
call costs little more than starting Python. It answers only what the daemon routes (routing,
peer check and audit are the daemon's, as for git) and stores nothing: ``set`` and ``del`` fail.

``credhelper configure pip`` links it as ``keyring`` into ``~/.local/bin`` when that is on PATH
and no other ``keyring`` is (pip ignores a ``keyring`` in its own scripts directory). It serves
hosts the netrc block cannot, and the moment before sign-in: pip at a terminal asks its keyring
before it prompts, and an account that needs a person gets its code shown on the terminal
(``frontends/terminal.py``) instead of pip's ``User for HOST:``.
"""

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at start-up; pip runs this command per index URL
    from typing import Dict, List, Optional, Sequence, TextIO

from .. import flatjson  # json pulls in re: pip runs this command once per index URL
from ..client import Client
from ..errors import AmbiguousRoute, CredhelperError, NoRoute, RequestError
from .common import GET_TIMEOUT, say, starter
from .terminal import get_or_sign_in

_NOT_NETLOC = frozenset("/\\@?#") | frozenset(chr(c) for c in range(0x21)) | {"\x7f"}
USAGE = "usage: credhelper-keyring [--mode=creds] [--output=json] get SERVICE [USERNAME]\n"


def service_url(service: str) -> "Optional[str]":
    """The https URL a keyring service name stands for, or None when it cannot be ours."""
    if "://" in service:
        scheme, _, rest = service.partition("://")
        return f"https://{rest}" if scheme.lower() == "https" and rest else None
    # pip falls back to the bare netloc, host[:port]: treat it as the host's root
    if not service or any(ch in _NOT_NETLOC for ch in service):
        return None
    return f"https://{service}/"


def _parse(argv: "Sequence[str]") -> "Optional[dict]":
    """The options keyring's CLI takes that matter here; None for anything else."""
    opts = {"mode": "password", "output": "plain", "args": []}  # type: dict
    words = list(argv)
    while words:
        word = words.pop(0)
        if word.startswith("--mode=") or word.startswith("--output="):
            key, _, value = word[2:].partition("=")
            opts[key] = value
        elif word in ("--mode", "--output") and words:
            opts[word[2:]] = words.pop(0)
        elif word.startswith("-"):
            return None
        else:
            opts["args"].append(word)
    if opts["mode"] not in ("password", "creds") or opts["output"] not in ("plain", "json"):
        return None
    return opts


def handle(argv: "Sequence[str]", stdout: "TextIO", stderr: "TextIO", client: "Client") -> int:
    """Answer one keyring command line; 0 with the credential, 1 when there is none, 2 on misuse."""
    opts = _parse(argv)
    args: "List[str]" = opts["args"] if opts else []
    if opts is None or not args or args[0] not in ("get", "set", "del") or len(args) > 3:
        stderr.write(USAGE)
        return 2
    if args[0] != "get":
        stderr.write("credhelper-keyring: credhelper stores nothing; tokens come from the daemon\n")
        return 1
    if len(args) < 2 or (opts["mode"] == "password" and len(args) < 3):
        stderr.write(USAGE)
        return 2
    url = service_url(args[1])
    if url is None:
        return 1
    try:
        reply = get_or_sign_in(client, url, "keyring")
    except (NoRoute, AmbiguousRoute, RequestError):
        return 1   # not ours: the caller goes on as with an empty keyring
    except CredhelperError as exc:
        say(stderr, exc.message)
        return 1
    user, token = reply["username"], reply["token"]  # the client checked both
    if opts["mode"] == "creds":
        stdout.write(_json({"username": user, "password": token})
                     if opts["output"] == "json" else f"{user}\n{token}\n")
    else:
        stdout.write(_json({"password": token}) if opts["output"] == "json" else token + "\n")
    return 0


def _json(fields: "Dict[str, str]") -> str:
    """A flat object of strings as one JSON line."""
    text = flatjson.dumps(fields)
    if text is None:  # flatjson spells every flat object of strings; json has the last word
        import json

        text = json.dumps(fields)
    return text + "\n"


def main() -> None:
    """Console entry point: ``credhelper-keyring``."""
    try:
        code = handle(sys.argv[1:], sys.stdout, sys.stderr,
                      Client(timeout=GET_TIMEOUT, starter=starter()))
    except KeyboardInterrupt:  # Ctrl-C during a sign-in at the terminal (cancelled there)
        code = 130
    sys.exit(code)
