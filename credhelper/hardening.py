"""What the daemon does to its own process before it holds a token.

No core file and no ptrace by other processes of the same user (``PR_SET_DUMPABLE=0`` also makes
``/proc/PID/mem`` and ``environ`` root-only), and as many descriptors as the hard limit allows,
since every waiting client costs one.
"""

import ctypes
import ctypes.util
import logging
import resource

log = logging.getLogger("credhelper.hardening")

PR_SET_DUMPABLE = 4


def harden_process() -> None:
    """Turn off core dumps and ptrace-ability, and raise the open-file limit."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _set_undumpable()
    raise_fd_limit()


def _set_undumpable() -> None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            log.warning("cannot mark the process undumpable (errno %d)", ctypes.get_errno())
    except (OSError, AttributeError) as exc:  # not Linux, or no prctl in this libc
        log.warning("cannot mark the process undumpable: %s", exc)


def raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard one; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return hard
        except (ValueError, OSError) as exc:  # RLIM_INFINITY above the kernel's nr_open
            log.warning("cannot raise the open-file limit from %d: %s", soft, exc)
    return soft
