"""Socket client used by every front-end (git helper, keyring backend, CLI).

Standard library only: this runs in every git and pip process.
"""

from __future__ import annotations

import os
import _socket as socket  # socket.py pulls in selectors and enum: ~25 ms on every git call
TYPE_CHECKING = False  # the typing module itself costs milliseconds on every git call
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Optional, Union

    Starter = Callable[[str], bool]  # starts a daemon on this socket path; True when one answers

from . import paths, protocol
from .errors import CredhelperError, DaemonUnavailable, from_wire

DEFAULT_TIMEOUT = 10.0
_UNSAFE = ("\r", "\n", "\0")


class Client:
    """Talks to the daemon: one connection per request, as the protocol says."""

    def __init__(
        self, socket_path: Optional[Union[str, os.PathLike]] = None, timeout: float = DEFAULT_TIMEOUT,
        starter: Optional[Starter] = None,
    ) -> None:
        self.socket_path = os.fspath(socket_path) if socket_path else paths.socket_file()
        self.timeout = timeout
        self.starter = starter  # handed in by a front-end's main(), so we never import autostart

    def request(self, op: str, timeout: Optional[float] = None, **fields: Any) -> Dict[str, Any]:
        """Send one request and return the raw reply (``ok`` may be false)."""
        message = {"v": protocol.VERSION, "op": op}
        message.update({k: v for k, v in fields.items() if v is not None})
        sock = self._connect(self.timeout if timeout is None else timeout)
        try:
            try:
                sock.sendall(protocol.encode(message))
                sock.shutdown(socket.SHUT_WR)
                data = protocol.read_message(sock)
            except socket.timeout as exc:
                raise DaemonUnavailable(f"the daemon did not answer {op!r} in time") from exc
            except OSError as exc:
                raise DaemonUnavailable(f"the daemon dropped the connection: {exc}") from exc
        finally:
            sock.close()
        if not data:
            raise DaemonUnavailable("the daemon closed the connection without answering")
        return protocol.decode(data)

    def _connect(self, timeout: float) -> socket.socket:
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

    def _connect_once(self, timeout: float) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(self.socket_path)
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
        return sock

    def call(self, op: str, timeout: Optional[float] = None, **fields: Any) -> Dict[str, Any]:
        """Send one request; a failed reply is raised as the matching ``CredhelperError``."""
        reply = self.request(op, timeout=timeout, **fields)
        if not reply.get("ok"):
            raise from_wire(reply)
        return reply

    def get(self, url: str, for_: str = "cli", timeout: Optional[float] = None) -> Dict[str, Any]:
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
