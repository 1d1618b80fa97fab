"""The Unix socket server: private directory, peer-uid check, one request per connection.

A bad client never takes the daemon down: every failure becomes an error reply (or a closed
connection) and the accept loop goes on (git's credential-cache--daemon ``serve_one_client``).
"""

import logging
import os
import selectors
import socket
import stat
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from . import paths, protocol
from .errors import Busy, ConfigError, CredhelperError, Forbidden, RequestError
from .logs import AuditLog
from .workers import Workers

log = logging.getLogger("credhelper.listener")

_UCRED = struct.Struct("3i")
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes on Linux, one of them the terminating NUL
# Clients send their request right after connecting; one accepted a moment early is watched by
# the accept loop this long (at most this many at once) before a worker reads it.
WAIT_FOR_REQUEST = 0.05
MAX_WAITING = 128
_NOTHING = b"\0nothing read yet"  # a marker _try_inline returns, compared by identity


@dataclass(frozen=True)
class Peer:
    """The process on the other end of a connection, as the kernel reports it."""

    pid: int
    uid: int
    gid: int

    @property
    def exe(self) -> Optional[str]:
        """The peer's executable, when /proc lets us see it."""
        try:
            return os.readlink(f"/proc/{self.pid}/exe")
        except OSError:
            return None


Handler = Callable[[Dict[str, Any], Peer], Dict[str, Any]]
# Answers a request at once from memory, or returns None to have it served on a worker thread.
FastHandler = Callable[[Dict[str, Any], Peer], Optional[Dict[str, Any]]]


def peer_of(conn: socket.socket) -> Peer:
    """SO_PEERCRED of a connected Unix socket."""
    pid, uid, gid = _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return Peer(pid, uid, gid)


def bind_unix(path: Path) -> socket.socket:
    """Bind a listening socket at ``path`` inside a 0700 directory, socket mode 0600."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ConfigError(f"socket path {path} is longer than a Unix socket allows "
                          f"({MAX_SOCKET_PATH} bytes); set CREDHELPER_SOCKET to a shorter path")
    paths.ensure_private_dir(path.parent)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ConfigError(f"{path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(os.fspath(path))
        except OSError:
            os.unlink(path)  # stale socket of a daemon that died
        else:
            raise ConfigError(f"another credhelper daemon already listens on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket is born 0600: no window before a chmod
    try:
        sock.bind(os.fspath(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock


def _drain(conn: socket.socket, limit: int = 2 * protocol.MAX_MESSAGE) -> None:
    """Read what the client sent and we did not (a refused or oversized request) before closing.

    Closing a Unix socket with unread input resets the connection, and the client would lose
    the error reply already queued for it. A well-behaved client has half-closed: one recv.
    """
    try:
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(0.5)
        while limit > 0:
            chunk = conn.recv(65536)
            if not chunk:
                return
            limit -= len(chunk)
    except OSError:
        pass


def _drain_now(conn: socket.socket) -> None:
    """``_drain`` for the accept loop: takes only what is already there, never waits."""
    try:
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(65536, socket.MSG_DONTWAIT):
            pass
    except OSError:  # BlockingIOError included: nothing more has arrived
        pass


class SocketServer:
    """Accepts connections and runs ``handler`` for each request on a worker thread.

    With ``fast``, the accept loop first tries to answer on its own thread: a request already
    complete in the socket buffer, from our own uid, that ``fast`` can answer from memory (a
    ``get`` on a fresh slot) costs no thread handoff. Anything else - a partial read, another
    op, a cold slot, an error - goes to the pool with the bytes read so far. The loop only ever
    reads and writes without blocking, so a silent or slow client cannot hold it up.
    """

    def __init__(self, sock: socket.socket, handler: Handler, audit: AuditLog,
                 path: Optional[Path] = None, workers: int = 64, max_pending: int = 1024,
                 read_timeout: float = 5.0, wake_fd: Optional[int] = None,
                 fast: Optional[FastHandler] = None) -> None:
        self._sock = sock
        self._fast = fast
        self._wake_fd = wake_fd  # readable now and then (a signal wakeup fd): drained, no more
        self._path = path
        self._handler = handler
        self._audit = audit
        self._pool = Workers(workers, "credhelper-conn")  # idle threads end after a burst
        self._pending = threading.BoundedSemaphore(max_pending)
        self._read_timeout = read_timeout
        self._uid = os.getuid()
        self._stop_r, self._stop_w = os.pipe()
        self._pipe_lock = threading.Lock()
        self._pipe_open = True
        self._stopped = threading.Event()
        # Connections accepted before their request arrived, watched by the accept loop until
        # their deadline: then a worker takes them, as it takes everything the loop cannot answer.
        self._selector: Optional[selectors.BaseSelector] = None
        self._waiting: Dict[socket.socket, float] = {}

    def serve_forever(self) -> None:
        """Accept until ``shutdown()``."""
        selector = self._selector = selectors.DefaultSelector()
        selector.register(self._sock, selectors.EVENT_READ)
        selector.register(self._stop_r, selectors.EVENT_READ)
        if self._wake_fd is not None:
            selector.register(self._wake_fd, selectors.EVENT_READ)
        try:
            while not self._stopped.is_set():
                timeout = None
                if self._waiting:
                    timeout = max(0.0, min(self._waiting.values()) - time.monotonic())
                for key, _ in selector.select(timeout):
                    if key.fileobj == self._stop_r:
                        return
                    if key.fileobj == self._wake_fd:
                        _drain_pipe(self._wake_fd)
                        continue
                    if key.fileobj != self._sock:  # a connection we wait on has sent something
                        self._dispatch(self._unwait(key.fileobj), may_wait=False)  # type: ignore[arg-type]
                        continue
                    try:
                        conn, _ = self._sock.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as exc:  # EMFILE and friends: keep serving the others
                        log.warning("accept failed: %s", exc)
                        continue
                    self._dispatch(conn)
                now = time.monotonic()
                for conn in [c for c, deadline in self._waiting.items() if deadline <= now]:
                    self._dispatch(self._unwait(conn), may_wait=False)
        finally:
            for conn in list(self._waiting):
                self._unwait(conn).close()
            self._selector = None
            selector.close()
            self._close()

    def _unwait(self, conn: socket.socket) -> socket.socket:
        assert self._selector is not None
        self._selector.unregister(conn)
        del self._waiting[conn]
        return conn

    def _close(self) -> None:
        # Done by the loop's own thread, not by shutdown(): an fd closed while this thread is
        # about to re-enter select() silently leaves the epoll set, the wake-up byte written to
        # it is never seen, and the daemon hangs on SIGTERM.
        try:
            self._sock.close()
        finally:
            if self._path is not None:
                try:
                    os.unlink(self._path)
                except FileNotFoundError:
                    pass
            self._pool.shutdown(wait=True, cancel=True)
            with self._pipe_lock:
                os.close(self._stop_r)
                os.close(self._stop_w)
                self._pipe_open = False

    def _dispatch(self, conn: socket.socket, may_wait: bool = True) -> None:
        start: Optional[bytes] = b""
        if self._fast is not None:
            try:
                start = self._try_inline(conn)
            except Exception:  # noqa: BLE001 - the accept loop must outlive any one client
                log.exception("unexpected error on the fast path")
                conn.close()
                return
            if start is None:
                return  # answered and closed
            if start is _NOTHING:
                if may_wait and self._selector is not None and len(self._waiting) < MAX_WAITING:
                    self._selector.register(conn, selectors.EVENT_READ)
                    self._waiting[conn] = time.monotonic() + WAIT_FOR_REQUEST
                    return
                start = b""
        if not self._pending.acquire(blocking=False):
            self._reply(conn, Busy("too many requests in flight; try again").to_wire())
            conn.close()
            return
        try:
            self._pool.submit(self._serve_one, conn, start or b"")
        except RuntimeError:  # pool shut down
            self._pending.release()
            conn.close()

    def _try_inline(self, conn: socket.socket) -> Optional[bytes]:
        """Answer ``conn`` here and return None, or return the bytes read for a worker to go on."""
        assert self._fast is not None
        peer = peer_of(conn)
        if peer.uid != self._uid:
            return b""  # the worker refuses it and writes the audit line, as ever
        try:
            start = conn.recv(protocol.MAX_MESSAGE + 1, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return _NOTHING  # not sent yet
        except OSError:
            conn.close()
            return None
        line, newline, _ = start.partition(b"\n")
        if not newline or len(line) > protocol.MAX_MESSAGE:
            return start  # incomplete or oversized: the worker reads on or refuses
        try:
            request = protocol.parse_request(line)
        except CredhelperError:
            return start  # the worker answers the error
        reply = self._fast(request, peer)
        if reply is None:
            return start
        data = protocol.encode(reply)
        try:
            sent = conn.send(data, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # the client went away
            conn.close()
            return None
        if sent < len(data):  # a full send buffer: a worker may wait for the client, we may not
            self._pool_send(conn, data[sent:])
            return None
        _drain_now(conn)
        conn.close()
        return None

    def _pool_send(self, conn: socket.socket, rest: bytes) -> None:
        def finish() -> None:
            try:
                conn.settimeout(self._read_timeout)
                conn.sendall(rest)
            except OSError:
                pass
            finally:
                _drain(conn)
                conn.close()
        try:
            self._pool.submit(finish)
        except RuntimeError:  # pool shut down
            conn.close()

    def _serve_one(self, conn: socket.socket, start: bytes = b"") -> None:
        try:
            conn.settimeout(self._read_timeout)
            peer = peer_of(conn)
            if peer.uid != self._uid:
                self._audit.write(event="refused", pid=peer.pid, uid=peer.uid, exe=peer.exe,
                                  reason="peer uid differs from the daemon's")
                log.warning("refused a connection from uid %d (pid %d)", peer.uid, peer.pid)
                self._reply(conn, Forbidden("this daemon serves only its own user").to_wire())
                return
            self._reply(conn, self._answer(conn, peer, start))
        except Exception:  # noqa: BLE001 - the daemon must outlive any one client
            log.exception("unexpected error while serving a client")
        finally:
            _drain(conn)
            conn.close()
            self._pending.release()

    def _answer(self, conn: socket.socket, peer: Peer, start: bytes = b"") -> Dict[str, Any]:
        try:
            request = protocol.parse_request(protocol.read_message(conn, start=start))
            return self._handler(request, peer)
        except CredhelperError as exc:
            return exc.to_wire()
        except socket.timeout:
            return RequestError("no complete request received in time").to_wire()
        except Exception:  # noqa: BLE001
            log.exception("internal error while answering a request")
            return CredhelperError("internal error; see the daemon log").to_wire()

    @staticmethod
    def _reply(conn: socket.socket, reply: Dict[str, Any]) -> None:
        try:
            conn.sendall(protocol.encode(reply))
        except OSError:
            pass  # the client went away; nothing to tell it

    def shutdown(self) -> None:
        """Make ``serve_forever`` stop accepting, finish requests in flight, remove our socket."""
        self._stopped.set()
        with self._pipe_lock:
            if self._pipe_open:  # else the loop has ended already
                os.write(self._stop_w, b"x")


def _drain_pipe(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
