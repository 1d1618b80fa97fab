"""Socket client used by every front-end (git helper, keyring backend, CLI).

Standard library only: this runs in every git and pip process.
"""

import posix  # not os, nor struct and stat: 3 ms on every git call (see socketpath)
import _socket as socket  # socket.py pulls in selectors and enum: ~25 ms on every git call
import sys
import time
TYPE_CHECKING = False  # the typing module itself costs milliseconds on every git call
if TYPE_CHECKING:
    import os
    from typing import Any, Callable, Dict, Optional, Union

    Starter = Callable[[str], bool]  # starts a daemon on this socket path; True when one answers

from . import protocol, socketpath
from .errors import CredhelperError, DaemonUnavailable, ForeignSocket, from_wire

DEFAULT_TIMEOUT = 10.0
# Replies may be larger than requests: a status with hundreds of routes runs past 64 KiB.
MAX_REPLY = 16 * 1024 * 1024
_UCRED_SIZE = 12  # struct ucred: pid, uid, gid, each 32 bits in the machine's byte order
_S_IFMT, _S_IFDIR = 0o170000, 0o040000


def foreign_reason(socket_path: str) -> "Optional[str]":
    """Why the socket's directory cannot be trusted as our own, or None when it is ours and 0700.

    Another user who can create the socket first (a shared ``XDG_RUNTIME_DIR`` or
    ``CREDHELPER_SOCKET``) would receive every URL we ask about and answer with tokens of its
    choosing; a directory only we can enter rules that out before we connect.
    """
    directory = socketpath.directory_of(socket_path)
    try:
        info = posix.lstat(directory)
    except OSError:
        return None  # nothing there yet: connect() says so (and autostart makes it ours)
    if info.st_mode & _S_IFMT != _S_IFDIR:
        return f"{directory} is not a directory"
    if info.st_uid != posix.getuid():
        return f"its directory {directory} belongs to uid {info.st_uid}, not to you"
    if info.st_mode & 0o077:
        return (f"its directory {directory} is open to other users "
                f"(mode {info.st_mode & 0o7777:o}); run: chmod 700 {directory}")
    return None


def ours_listening(socket_path: str) -> bool:
    """True when a process of our own user listens at ``socket_path`` in a private directory."""
    try:
        Client(socket_path, timeout=2.0)._connect_once(2.0).close()
    except DaemonUnavailable:
        return False
    return True


def peer_uid(sock: "socket.socket") -> int:
    """The uid of the process on the other end of a connected Unix socket (SO_PEERCRED)."""
    ucred = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED_SIZE)
    return int.from_bytes(ucred[4:8], sys.byteorder)


_UNSAFE = ("\r", "\n", "\0")


class Client:
    """Talks to the daemon: one connection per request, as the protocol says."""

    def __init__(
        self, socket_path: "Optional[Union[str, os.PathLike]]" = None,
        timeout: float = DEFAULT_TIMEOUT, starter: "Optional[Starter]" = None,
    ) -> None:
        self.socket_path: str = (posix.fspath(socket_path) if socket_path
                                 else socketpath.socket_file())
        self.timeout = timeout
        self.starter = starter  # handed in by a front-end's main(), so we never import autostart

    def request(self, op: str, timeout: "Optional[float]" = None,
                **fields: "Any") -> "Dict[str, Any]":
        """Send one request and return the raw reply (``ok`` may be false)."""
        message = {"v": protocol.VERSION, "op": op}
        message.update({k: v for k, v in fields.items() if v is not None})
        sock = self._connect(self.timeout if timeout is None else timeout)
        try:
            try:
                sock.sendall(protocol.encode(message))
                sock.shutdown(socket.SHUT_WR)
                data = protocol.read_message(sock, limit=MAX_REPLY)
            except socket.timeout as exc:
                raise DaemonUnavailable(f"the daemon did not answer {op!r} in time") from exc
            except OSError as exc:
                raise DaemonUnavailable(f"the daemon dropped the connection: {exc}") from exc
        finally:
            sock.close()
        if not data:
            raise DaemonUnavailable("the daemon closed the connection without answering")
        return protocol.decode(data, limit=MAX_REPLY)

    def _connect(self, timeout: float) -> "socket.socket":
        """A connected socket; with a ``starter``, start the daemon once when nothing listens."""
        try:
            return self._connect_once(timeout)
        except DaemonUnavailable as exc:
            # Only "nothing listens" starts a daemon: a slow or foreign socket must not get a twin.
            nothing_listens = isinstance(exc.__cause__, (FileNotFoundError, ConnectionRefusedError))
            if self.starter is None or not nothing_listens:
                raise
            if not self.starter(self.socket_path):
                raise
        return self._connect_once(timeout)

    def _connect_once(self, timeout: float) -> "socket.socket":
        reason = foreign_reason(self.socket_path)
        if reason is not None:
            raise ForeignSocket(f"refusing the daemon socket {self.socket_path}: {reason}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            self._connect_patiently(sock, timeout)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise DaemonUnavailable(
                f"the daemon is not running (no socket at {self.socket_path}); "
                "run: credhelper start"
            ) from exc
        except OSError as exc:
            sock.close()
            raise DaemonUnavailable(
                f"cannot reach the daemon at {self.socket_path}: {exc.strerror or exc}"
            ) from exc
        # The directory check above cannot see a socket swapped in after it: the kernel's word
        # on who listens is the one that counts, and it is asked before a byte is sent.
        uid = peer_uid(sock)
        if uid != posix.getuid():
            sock.close()
            raise ForeignSocket(f"refusing the daemon socket {self.socket_path}: "
                                f"the process on it runs as uid {uid}, not as you")
        return sock

    def _connect_patiently(self, sock: "socket.socket", timeout: float) -> None:
        # A Unix socket with a timeout is non-blocking inside: when the daemon's accept queue is
        # full, connect() fails with EAGAIN at once instead of waiting. A burst of clients is
        # not an outage; wait for room, within our timeout.
        deadline = time.monotonic() + timeout
        pause = 0.001
        while True:
            try:
                sock.connect(self.socket_path)
                return
            except BlockingIOError:
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.05)

    def call(self, op: str, timeout: "Optional[float]" = None, **fields: "Any") -> "Dict[str, Any]":
        """Send one request; a failed reply is raised as the matching ``CredhelperError``."""
        reply = self.request(op, timeout=timeout, **fields)
        if not reply.get("ok"):
            raise from_wire(reply)
        return reply

    def get(self, url: str, for_: str = "cli",
            timeout: "Optional[float]" = None) -> "Dict[str, Any]":
        """A token for ``url``: ``{"username", "token", "expires_on"}``, both strings checked.

        A username or token that is not a string, or holds CR, LF or NUL, would let the value
        inject lines into git's protocol or an HTTP header: it is refused here, once, for all.
        """
        reply = self.call("get", timeout=timeout, url=url, **{"for": for_})
        username, token = reply.get("username"), reply.get("token")
        if not isinstance(username, str) or not isinstance(token, str) or not token or any(
                bad in value for value in (username, token) for bad in _UNSAFE):
            raise CredhelperError("the daemon returned an unusable credential; nothing passed on")
        return reply

    def invalidate(self, url: str, token: str) -> None:
        """Tell the daemon a tool saw ``token`` rejected for ``url``."""
        self.call("invalidate", url=url, token=token)

    def ping(self) -> bool:
        """True when a daemon answers."""
        try:
            self.call("ping", timeout=2.0)
        except CredhelperError:
            return False
        return True
