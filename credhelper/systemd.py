"""The two systemd protocols the daemon speaks: socket activation and readiness notification.

Both are small, stable wire protocols (sd_listen_fds(3), sd_notify(3)), so they are written here
against the standard library instead of pulling in libsystemd bindings. Outside systemd every
function is a harmless no-op, so the daemon calls them unconditionally.
"""

import fcntl
import os
import socket
from typing import List, Optional

from .errors import ConfigError

LISTEN_FDS_START = 3  # SD_LISTEN_FDS_START: fds are passed from 3 upwards, in unit order
_LISTEN_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def listen_fds(unset_environment: bool = True) -> List[socket.socket]:
    """The Unix stream sockets systemd passed to this process; empty when not socket-activated.

    Like sd_listen_fds(3): the fds are only ours when ``LISTEN_PID`` names this process (the
    variables are inherited by children, who must not steal the sockets). They are marked
    close-on-exec so helpers we spawn (``assertion_command``) do not inherit the listener.
    """
    pid = os.environ.get("LISTEN_PID", "")
    count = os.environ.get("LISTEN_FDS", "")
    if unset_environment:
        for name in _LISTEN_VARS:
            os.environ.pop(name, None)
    if not pid.isdigit() or int(pid) != os.getpid() or not count.isdigit():
        return []
    sockets = []
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + int(count)):
        flags = fcntl.fcntl(fd, fcntl.F_GETFD)
        fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)
        sockets.append(_unix_listener(fd))
    return sockets


def _unix_listener(fd: int) -> socket.socket:
    """Wrap ``fd``; refuse anything but a listening Unix stream socket.

    A TCP listener would bypass the peer-uid check, so a unit edited to ``ListenStream=`` a port
    is a configuration error rather than something to serve on.
    """
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ConfigError(f"fd {fd} passed by systemd is not a socket: {exc.strerror}") from exc
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        family, kind = sock.family, sock.type
        sock.detach()  # leave the fd to its owner; closing it here would hide the real mistake
        raise ConfigError(
            f"fd {fd} passed by systemd is {family.name}/{kind.name}; "
            "credhelper listens only on a Unix stream socket (ListenStream=%t/credhelper/daemon.sock)"
        )
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.detach()
        raise ConfigError(f"fd {fd} passed by systemd is not listening (Accept=yes is not supported)")
    return sock


def notify(state: str) -> bool:
    """Send ``state`` (``"READY=1"``, ...) to the service manager, like sd_notify(3).

    Returns False, doing nothing, when ``$NOTIFY_SOCKET`` is unset or cannot be reached: the
    daemon must run the same outside systemd, and a lost notification is systemd's timeout to
    report, not a reason to crash.
    """
    address = _notify_address(os.environ.get("NOTIFY_SOCKET", ""))
    if address is None:
        return False
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(address)
        sock.sendall(state.encode("utf-8"))
    except OSError:
        return False
    finally:
        sock.close()
    return True


def _notify_address(value: str) -> Optional[str]:
    """The socket address for a ``$NOTIFY_SOCKET`` value; ``@name`` is the abstract namespace."""
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # unset, or a transport we do not speak (vsock:)


def ready() -> bool:
    """Tell systemd the socket is served and the daemon is up (``Type=notify``)."""
    return notify("READY=1")


def stopping() -> bool:
    """Tell systemd the daemon has begun shutting down."""
    return notify("STOPPING=1")


def status(text: str) -> bool:
    """Show ``text`` as the unit's status line in ``systemctl status``."""
    one_line = " ".join(text.split())
    return notify(f"STATUS={one_line}")
