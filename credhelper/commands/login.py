"""``credhelper login``: the daemon runs the device flow; this shows the code and a countdown.

Each way a sign-in can end has its own exit code (``commands/exits.py``), so scripts and people
can tell a refusal from a code left too long from a Ctrl-C.
"""

import signal
import sys
import time
from typing import Dict, Optional, TextIO, Tuple

from ..client import Client
from ..errors import CredhelperError, sign_in_ending
from .exits import BY_SIGN_IN_ENDING, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK


def run_login(client: Client, account: Optional[str], out: TextIO = sys.stdout,
              err: TextIO = sys.stderr, poll: float = 1.0) -> int:
    """Start a device-code sign-in in the daemon and wait for the person to finish it."""
    try:
        flow = client.call("login_start", account=account)
        account = flow["account"]
        out.write(f"To sign in as '{account}', open {flow['verification_uri']} "
                  f"and enter the code {flow['user_code']}\n")
        out.flush()
        expires_at = float(flow.get("expires_at") or time.time() + 900)
        while True:
            reply = client.call("login_wait", timeout=poll + 10, account=account, wait=poll)
            state = reply.get("state")
            if state == "done":
                _clear(err)
                out.write(f"Signed in as {reply.get('user') or 'unknown user'} ({account})\n")
                return EXIT_OK
            if state == "failed":
                _clear(err)
                code, message = _failure(reply, account)
                err.write(f"credhelper: {message}\n")
                return code
            left = max(0, int(expires_at - time.time()))
            if err.isatty():
                err.write(f"\rWaiting for sign-in… code expires in {left // 60}:{left % 60:02d} ")
                err.flush()
    except KeyboardInterrupt:
        # A second Ctrl-C must not turn the clean-up into a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _clear(err)
        try:
            client.call("login_wait", timeout=5, account=account, wait=0, cancel=True)
        except CredhelperError:
            pass  # a daemon that cannot answer has no sign-in of ours to cancel
        err.write("credhelper: sign-in cancelled\n")
        return EXIT_INTERRUPTED


def _failure(reply: Dict[str, object], account: str) -> Tuple[int, str]:
    error = str(reply.get("error") or "")
    text = sign_in_ending(error, account)
    if text is not None:
        return BY_SIGN_IN_ENDING.get(error, EXIT_FAILED), text
    return EXIT_FAILED, str(reply.get("message") or f"sign-in failed: {error}")


def _clear(err: TextIO) -> None:
    if err.isatty():
        err.write("\r\033[K")
        err.flush()
