"""``credhelper login``: the daemon runs the device flow; this shows the code and a countdown."""

import sys
import time
from typing import Optional, TextIO

from .client import Client
from .errors import LoginFailed

EXIT_OK, EXIT_SIGN_IN, EXIT_INTERRUPTED = 0, 4, 130


def run_login(client: Client, account: Optional[str], out: TextIO = sys.stdout,
              err: TextIO = sys.stderr, poll: float = 1.0) -> int:
    """Start a device-code sign-in in the daemon and wait for the person to finish it."""
    flow = client.call("login_start", account=account)
    account = flow["account"]
    out.write(f"To sign in as '{account}', open {flow['verification_uri']} "
              f"and enter the code {flow['user_code']}\n")
    out.flush()
    expires_at = float(flow.get("expires_at") or time.time() + 900)
    try:
        while True:
            reply = client.call("login_wait", timeout=poll + 10, account=account, wait=poll)
            state = reply.get("state")
            if state == "done":
                _clear(err)
                out.write(f"Signed in as {reply.get('user') or 'unknown user'} ({account})\n")
                return EXIT_OK
            if state == "failed":
                _clear(err)
                raise LoginFailed(reply.get("message") or f"sign-in failed: {reply.get('error')}")
            left = max(0, int(expires_at - time.time()))
            if err.isatty():
                err.write(f"\rWaiting for sign-in… code expires in {left // 60}:{left % 60:02d} ")
                err.flush()
    except KeyboardInterrupt:
        _clear(err)
        try:
            client.call("login_wait", account=account, wait=0, cancel=True)
        finally:
            err.write("credhelper: sign-in cancelled\n")
        return EXIT_INTERRUPTED


def _clear(err: TextIO) -> None:
    if err.isatty():
        err.write("\r\033[K")
        err.flush()
