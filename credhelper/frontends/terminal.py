"""A person's sign-in from inside a tool that runs us at a terminal (pip's ``keyring`` command).

pip captures what its keyring command prints, so a person at a terminal would only ever see
pip's own ``User for HOST:`` prompt. When the account behind a URL needs a sign-in and there
is a terminal to speak to (the controlling terminal, ``/dev/tty``, as ssh and git's askpass
use), the code is shown there and the command waits for the sign-in as ``credhelper login``
does; pip then goes on with the token instead of prompting. Without a terminal (CI, a pipe, a
service) nothing waits: the caller answers at once. Standard library only.
"""

import posix
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, TextIO

    from ..client import Client

from ..errors import CredhelperError, sign_in_ending

POLL = 2.0  # seconds each login_wait may hold the connection
TERMINAL = "/dev/tty"


def open_terminal(path: str = TERMINAL) -> "Optional[TextIO]":
    """The controlling terminal, open for writing; None when this process has none."""
    try:
        fd = posix.open(path, posix.O_WRONLY | posix.O_NOCTTY)
    except OSError:  # ENXIO: no controlling terminal; ENOENT, EACCES: none we may use
        return None
    return open(fd, "w", encoding="utf-8", errors="replace")


def sign_in(client: "Client", account: str, host: str, terminal: "TextIO") -> bool:
    """Show the device code for ``account`` on ``terminal`` and wait; True once signed in.

    The wait ends with the sign-in, with the code's expiry (the daemon reports it), or with
    Ctrl-C, which cancels the sign-in in the daemon as ``credhelper login`` does.
    """
    def tell(line: str) -> None:
        terminal.write(f"credhelper: {line}\n")
        terminal.flush()

    try:
        flow = client.call("login_start", account=account)
        tell(f"{host} needs '{account}' signed in: open {flow['verification_uri']} "
             f"and enter the code {flow['user_code']} (waiting; Ctrl-C stops)")
        deadline = float(flow.get("expires_at") or time.time() + 900) + 30
        while time.time() < deadline:
            reply = client.call("login_wait", timeout=POLL + 10, account=account, wait=POLL)
            if reply.get("state") == "done":
                tell(f"signed in as {reply.get('user') or 'unknown user'} ({account})")
                return True
            if reply.get("state") == "failed":
                error = str(reply.get("error") or "")
                tell(sign_in_ending(error, account) or str(reply.get("message") or error))
                return False
        tell(f"the code expired before sign-in finished; run credhelper login {account}")
        return False
    except KeyboardInterrupt:
        try:
            client.call("login_wait", timeout=5, account=account, wait=0, cancel=True)
        except CredhelperError:
            pass  # a daemon that cannot answer has no sign-in of ours to cancel
        tell("sign-in cancelled")
        raise
    except CredhelperError as exc:
        tell(exc.message)
        return False


def sign_in_if_present(client: "Client", account: str, url: str) -> bool:
    """Sign ``account`` in at this process's terminal, if it has one; True once signed in."""
    terminal = open_terminal()
    if terminal is None:
        return False  # no one to show a code to: the caller answers at once
    with terminal:
        return sign_in(client, account, url.split("/")[2], terminal)
