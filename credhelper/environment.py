"""Every ``CREDHELPER_*`` environment knob, read here and nowhere else.

Read on every call, so tests and wrappers can point credhelper elsewhere. Standard library only:
the git helper reads some of these on every call.

==========================  ============================================================
``CREDHELPER_CONFIG``       the config file (``paths.config_path``)
``CREDHELPER_SOCKET``       the daemon's socket (``paths.socket_file``)
``CREDHELPER_STATE_DIR``    cache, key file, logs (``paths.state_dir``)
``CREDHELPER_NO_AUTOSTART`` git and pip never start a daemon (``credhelper start`` still does)
``CREDHELPER_HTTP_TIMEOUT`` seconds for each identity-provider request (default 10)
``CREDHELPER_DEBUG``        the CLI shows the traceback of an internal error
``CREDHELPER_WORKSPACE_ROOT``  the folder ``doctor`` scans for token material (``/workspace``)
==========================  ============================================================
"""

import posix
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional


def getenv(name: str) -> "Optional[str]":
    """``os.environ.get(name)`` without importing ``os`` (2.5 ms on every git call).

    ``os.environ`` is a view of ``posix.environ``: a change made through either is seen here.
    """
    encoding = sys.getfilesystemencoding()
    value = posix.environ.get(name.encode(encoding, "surrogateescape"))
    return None if value is None else value.decode(encoding, "surrogateescape")


def _value(name: str) -> "Optional[str]":
    value = (getenv(name) or "").strip()
    return value or None


def config_file() -> "Optional[str]":
    """``$CREDHELPER_CONFIG``, when set."""
    return _value("CREDHELPER_CONFIG")


def socket_file() -> "Optional[str]":
    """``$CREDHELPER_SOCKET``, when set."""
    return _value("CREDHELPER_SOCKET")


def state_dir() -> "Optional[str]":
    """``$CREDHELPER_STATE_DIR``, when set."""
    return _value("CREDHELPER_STATE_DIR")


def autostart_disabled() -> bool:
    """True when ``$CREDHELPER_NO_AUTOSTART`` asks git and pip never to start a daemon."""
    return _value("CREDHELPER_NO_AUTOSTART") not in (None, "0")


def http_timeout() -> "Optional[str]":
    """``$CREDHELPER_HTTP_TIMEOUT`` as written (the caller judges it), when set."""
    return _value("CREDHELPER_HTTP_TIMEOUT")


def debug() -> bool:
    """True when ``$CREDHELPER_DEBUG`` asks for tracebacks."""
    return _value("CREDHELPER_DEBUG") not in (None, "0")


def workspace_root() -> "Optional[str]":
    """``$CREDHELPER_WORKSPACE_ROOT``, when set."""
    return _value("CREDHELPER_WORKSPACE_ROOT")
