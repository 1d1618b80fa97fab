"""``credhelper login``: the daemon runs the device flow; this shows the code and a countdown.

Each way a sign-in can end has its own exit code (``commands/exits.py``), so scripts and people
can tell a refusal from a code left too long from a Ctrl-C.
"""

import signal
import sys
from typing import Dict, Optional, TextIO

from ..client import Client
from ..frontends.terminal import cancel_sign_in, failure_message, run_sign_in
from .exits import BY_SIGN_IN_ENDING, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK


def run_login(client: Client, account: Optional[str], out: TextIO = sys.stdout,
              err: TextIO = sys.stderr, poll: float = 1.0) -> int:
    """Start a device-code sign-in in the daemon and wait for the person to finish it."""
    def show(flow: Dict[str, object]) -> None:
        nonlocal account
        account = str(flow["account"])
        out.write(f"To sign in as '{account}', open {flow['verification_uri']} "
                  f"and enter the code {flow['user_code']}\n")
        out.flush()

    def countdown(left: float) -> None:
        if err.isatty():
            seconds = max(0, int(left))
            err.write(f"\rWaiting for sign-in… code expires in {seconds // 60}:{seconds % 60:02d} ")
            err.flush()

    try:
        reply = run_sign_in(client, account, show, countdown, poll)
    except KeyboardInterrupt:
        # A second Ctrl-C must not turn the clean-up into a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _clear(err)
        cancel_sign_in(client, account)
        err.write("credhelper: sign-in cancelled\n")
        return EXIT_INTERRUPTED
    _clear(err)
    name = str(reply.get("account") or account)
    if reply.get("state") == "done":
        out.write(f"Signed in as {reply.get('user') or 'unknown user'} ({name})\n")
        return EXIT_OK
    err.write(f"credhelper: {failure_message(reply, name)}\n")
    return BY_SIGN_IN_ENDING.get(str(reply.get("error") or ""), EXIT_FAILED)


def _clear(err: TextIO) -> None:
    if err.isatty():
        err.write("\r\033[K")
        err.flush()
