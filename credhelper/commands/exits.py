"""Exit codes of the ``credhelper`` command, and which error or sign-in ending gives which.

    0    ok
    1    something failed (doctor found problems, auth failed, a sign-in could not start)
    2    bad usage or bad config
    3    the daemon is not running
    4    sign-in needed: run ``credhelper login ACCOUNT``
    5    login: the person declined the sign-in
    6    login: the code expired before the sign-in finished
    7    login: cancelled by another ``credhelper login`` or ``logout`` of the same account
    130  interrupted (Ctrl-C); a sign-in is cancelled in the daemon too
    141  the program reading our output went away (``credhelper doctor | head``); nothing printed
"""

from typing import Dict, Tuple, Type

from ..errors import (ConfigError, CredhelperError, DaemonUnavailable, LoginFailed, NotSignedIn,
                      RequestError)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_DAEMON, EXIT_SIGN_IN = 0, 1, 2, 3, 4
EXIT_DENIED, EXIT_EXPIRED, EXIT_CANCELLED, EXIT_INTERRUPTED = 5, 6, 7, 130
EXIT_PIPE = 128 + 13  # what a shell reports for a program SIGPIPE ended, as coreutils' `| head`

_BY_ERROR: Tuple[Tuple[Type[CredhelperError], int], ...] = (
    (ConfigError, EXIT_USAGE), (RequestError, EXIT_USAGE), (DaemonUnavailable, EXIT_NO_DAEMON),
    (NotSignedIn, EXIT_SIGN_IN), (LoginFailed, EXIT_FAILED),
)

# The daemon's sign-in ending codes (errors.SIGN_IN_ENDINGS) -> exit code of `credhelper login`.
BY_SIGN_IN_ENDING: Dict[str, int] = {
    "access_denied": EXIT_DENIED, "authorization_declined": EXIT_DENIED,
    "expired_token": EXIT_EXPIRED, "code_expired": EXIT_EXPIRED, "cancelled": EXIT_CANCELLED,
}


def for_error(exc: CredhelperError) -> int:
    """The documented exit code for ``exc``."""
    for cls, code in _BY_ERROR:
        if isinstance(exc, cls):
            return code
    return EXIT_FAILED
