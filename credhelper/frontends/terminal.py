"""A person's sign-in from inside a tool that runs us at a terminal (pip's ``keyring`` command).

pip captures what its keyring command prints, so a person at a terminal would only ever see
pip's own ``User for HOST:`` prompt. When the account behind a URL needs a sign-in and there
is a terminal to speak to (the controlling terminal, ``/dev/tty``, as ssh and git's askpass
use), the code is shown there and the command waits for the sign-in as ``credhelper login``
does; pip then goes on with the token instead of prompting. Without a terminal (CI, a pipe, a
service) nothing waits: the caller answers at once. ``credhelper login`` runs the same sign-in
loop (``run_sign_in``) with its own output. Standard library only.
"""

import posix
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Optional, TextIO

    from ..client import Client

from ..errors import CredhelperError, NotSignedIn, sign_in_ending

POLL = 2.0  # seconds each login_wait may hold the connection
TERMINAL = "/dev/tty"


def open_terminal(path: str = TERMINAL) -> "Optional[TextIO]":
    """The controlling terminal, open for writing; None when this process has none."""
    try:
        fd = posix.open(path, posix.O_WRONLY | posix.O_NOCTTY)
    except OSError:  # ENXIO: no controlling terminal; ENOENT, EACCES: none we may use
        return None
    return open(fd, "w", encoding="utf-8", errors="replace")


def run_sign_in(client: "Client", account: "Optional[str]",
                show: "Callable[[Dict[str, Any]], None]",
                waiting: "Optional[Callable[[float], None]]" = None,
                poll: float = POLL) -> "Dict[str, Any]":
    """Start a device-code sign-in in the daemon, ``show`` its flow (the code), wait for its end.

    Returns the last ``login_wait`` reply, whose ``state`` is ``done`` or ``failed``; a code left
    past its expiry (the daemon reports that itself) ends as ``expired_token``. ``waiting``
    hears the seconds left after each poll of ``poll`` seconds. A Ctrl-C propagates: the caller cancels the sign-in
    with :func:`cancel_sign_in` (``credhelper login`` first makes a second Ctrl-C harmless).
    """
    flow = client.call("login_start", account=account)
    account = flow["account"]
    show(flow)
    expires_at = float(flow.get("expires_at") or time.time() + 900)
    while time.time() < expires_at + 30:
        reply = client.call("login_wait", timeout=poll + 10, account=account, wait=poll)
        if reply.get("state") in ("done", "failed"):
            return reply
        if waiting is not None:
            waiting(expires_at - time.time())
    return {"ok": True, "account": account, "state": "failed", "error": "expired_token"}


def cancel_sign_in(client: "Client", account: "Optional[str]") -> None:
    """Cancel a sign-in in flight (after a Ctrl-C); a daemon that cannot answer has none."""
    try:
        client.call("login_wait", timeout=5, account=account, wait=0, cancel=True)
    except CredhelperError:
        pass


def failure_message(reply: "Dict[str, Any]", account: str) -> str:
    """The one line for a sign-in that ended in ``failed``."""
    error = str(reply.get("error") or "")
    return sign_in_ending(error, account) or str(reply.get("message") or f"sign-in failed: {error}")


def sign_in(client: "Client", account: str, host: str, terminal: "TextIO") -> bool:
    """Show the device code for ``account`` on ``terminal`` and wait; True once signed in."""
    def tell(line: str) -> None:
        terminal.write(f"credhelper: {line}\n")
        terminal.flush()

    def show(flow: "Dict[str, Any]") -> None:
        tell(f"{host} needs '{account}' signed in: open {flow['verification_uri']} "
             f"and enter the code {flow['user_code']} (waiting; Ctrl-C stops)")

    try:
        reply = run_sign_in(client, account, show)
    except KeyboardInterrupt:
        cancel_sign_in(client, account)
        tell("sign-in cancelled")
        raise
    except CredhelperError as exc:
        tell(exc.message)
        return False
    if reply.get("state") == "done":
        tell(f"signed in as {reply.get('user') or 'unknown user'} ({account})")
        return True
    tell(failure_message(reply, account))
    return False


def sign_in_if_present(client: "Client", account: str, url: str) -> bool:
    """Sign ``account`` in at this process's terminal, if it has one; True once signed in."""
    terminal = open_terminal()
    if terminal is None:
        return False  # no one to show a code to: the caller answers at once
    with terminal:
        return sign_in(client, account, url.split("/")[2], terminal)


def get_or_sign_in(client: "Client", url: str, for_: str) -> "Dict[str, Any]":
    """``client.get``; when a person must sign in first and is at a terminal, sign in there and
    ask again (the tools that run us hide our output, and would prompt next)."""
    try:
        return client.get(url, for_)
    except NotSignedIn as exc:
        if exc.account is None or not sign_in_if_present(client, exc.account, url):
            raise
    return client.get(url, for_)
