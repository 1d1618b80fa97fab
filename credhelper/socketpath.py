"""Where the daemon's socket is, worked out on the ``posix`` module alone.

Importing ``os`` costs about 2.5 ms (it builds ``_collections_abc`` and ``posixpath``), a sixth of
what the git helper may spend in all. The helper needs only these few pieces of ``os.path``, so
they are written here; the rare cases (``~user``, no ``$HOME``) are handed to ``os.path`` itself.
This module is on the hot path: builtins only.
"""

import posix

from . import environment
from .environment import getenv

APP = "credhelper"


def expanduser(path: str) -> str:
    """``os.path.expanduser`` for ``~`` and ``~/...`` with ``$HOME`` set; os.path for the rest."""
    if not path.startswith("~"):
        return path
    home = getenv("HOME")
    if (path == "~" or path.startswith("~/")) and home is not None:
        return (home.rstrip("/") + path[1:]) or "/"
    import os.path  # ~user, or no $HOME: the password database decides

    return os.path.expanduser(path)


def join(first: str, *rest: str) -> str:
    """``os.path.join`` for text paths."""
    path = first
    for part in rest:
        if part.startswith("/"):
            path = part
        elif not path or path.endswith("/"):
            path += part
        else:
            path += "/" + part
    return path


def home_based(var: str, default: str) -> str:
    """``$var`` when it is an absolute path, else ``default`` under the home directory."""
    value = getenv(var)
    if value and value.startswith("/"):
        return value
    return join(getenv("HOME") or expanduser("~"), default)


def socket_file() -> str:
    """``$CREDHELPER_SOCKET``, else under ``$XDG_RUNTIME_DIR``, else under ``$XDG_CACHE_HOME``."""
    explicit = environment.socket_file()
    if explicit:
        return expanduser(explicit)
    runtime = getenv("XDG_RUNTIME_DIR")
    if runtime and runtime.startswith("/"):
        return join(runtime, APP, "daemon.sock")
    return join(home_based("XDG_CACHE_HOME", ".cache"), APP, "daemon.sock")


def directory_of(path: str) -> str:
    """The directory holding ``path``, made absolute against the working directory.

    Unlike ``os.path.abspath`` this leaves ``..`` to the kernel, which is how ``connect()``
    will resolve the same path.
    """
    if not path.startswith("/"):
        path = join(posix.getcwd(), path)
    head = path[:path.rfind("/") + 1]
    return head.rstrip("/") or "/"
