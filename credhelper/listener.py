"""The Unix socket server: private directory, peer-uid check, one request per connection.

A bad client never takes the daemon down: every failure becomes an error reply (or a closed
connection) and the accept loop goes on (git's credential-cache--daemon ``serve_one_client``).
"""

import errno
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

from . import filelock, paths, protocol
from .errors import Busy, ConfigError, CredhelperError, Forbidden, RequestError
from .logs import AuditLog
from .workers import Workers

log = logging.getLogger("credhelper.listener")

_UCRED = struct.Struct("3i")
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes on Linux, one of them the terminating NUL
SERVING_SUFFIX = ".serving"  # beside the socket: held by the daemon that serves it
CLAIM_WAIT = 10.0  # seconds a new daemon waits for one that is still stopping
# Connections whose request is still arriving, watched by the accept loop: at most this many of
# our own user's, and far fewer of other users' (refused anyway, they must not crowd ours out).
MAX_READING = 512
MAX_FOREIGN_READING = 16
# Ops that may hold a worker for long (a login_wait waits up to 60 s): at most this many at once.
SLOW_OPS = {"login_wait": 4}
REFUSAL_LOG_EVERY = 60.0
_NO_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


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


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(os.fspath(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def claim_socket_path(path: Path, wait: float = CLAIM_WAIT) -> int:
    """An exclusive ``flock`` on ``<socket>.serving``, to hold while this daemon serves ``path``.

    Two daemons started at once would otherwise both find no socket and race to bind it, or
    both find a stale one and unlink it, the second unlinking the first's new socket. Only the
    holder looks, unlinks and binds. A holder that answers on ``path`` is another daemon: give
    up at once. One that does not is still starting or still stopping (saving its tokens):
    wait for it, up to ``wait`` seconds. The kernel drops the lock when its holder exits. The
    caller closes the returned descriptor once it no longer serves ``path``.
    """
    fd = filelock.open_beside(path, SERVING_SUFFIX)
    try:
        if filelock.lock_until(fd, time.monotonic() + wait, give_up=lambda: _answers(path)):
            return fd
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    if _answers(path):
        raise ConfigError(f"another credhelper daemon already listens on {path}")
    raise ConfigError(f"another credhelper daemon already holds {path} and does not answer")


def bind_unix(path: Path) -> socket.socket:
    """Bind a listening socket at ``path`` inside a 0700 directory, socket mode 0600."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ConfigError(f"socket path {path} is longer than a Unix socket allows "
                          f"({MAX_SOCKET_PATH} bytes); set CREDHELPER_SOCKET to a shorter path")
    paths.ensure_private_dir(path.parent)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ConfigError(f"{path} exists and is not a socket; refusing to replace it")
        if _answers(path):
            raise ConfigError(f"another credhelper daemon already listens on {path}")
        os.unlink(path)  # stale socket of a daemon that died
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket is born 0600: no window before a chmod
    try:
        sock.bind(os.fspath(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(socket.SOMAXCONN)  # a burst of clients waits in the queue, not in a retry
    return sock


def _drain(conn: socket.socket, within: float = 0.5, limit: int = 2 * protocol.MAX_MESSAGE) -> None:
    """Read what the client sent and we did not before closing, for ``within`` seconds at most.

    Closing a Unix socket with unread input resets the connection, and the client would lose
    the error reply already queued for it. A well-behaved client has half-closed: one recv. The
    bound is on the whole drain, not each recv, so a client trickling bytes cannot hold it.
    """
    deadline = time.monotonic() + within
    try:
        conn.shutdown(socket.SHUT_WR)
        while limit > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            conn.settimeout(left)
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


class AcceptPause:
    """What an accept loop does when ``accept()`` fails for want of descriptors.

    The listener stays readable while descriptors are short, so retrying at once spins the CPU
    and floods the log (EMFILE at 1,100 idle connections: a whole core, 10 MB of log in 3 s).
    Instead the listener leaves the selector for 50 ms, doubling up to a second, the loop says
    so once and serves what it holds; the first accept that works puts things back.
    """

    def __init__(self, selector: selectors.BaseSelector, sock: socket.socket, what: str) -> None:
        self._selector = selector
        self._sock = sock
        self._what = what
        self._backoff = 0.0
        self.until = 0.0  # while paused: when to listen again (monotonic), else 0

    def failed(self, exc: OSError) -> None:
        """``accept()`` raised ``exc``: pause on descriptor exhaustion, else log it."""
        if exc.errno not in _NO_RESOURCES:
            log.warning("accept failed on %s: %s", self._what, exc)
            return
        if not self._backoff:
            log.warning("cannot accept connections on %s (%s); pausing accepts until "
                        "descriptors free up", self._what, exc.strerror or exc)
        self._backoff = min(max(self._backoff * 2, 0.05), 1.0)
        if not self.until:
            self._selector.unregister(self._sock)
        self.until = time.monotonic() + self._backoff

    def accepted(self) -> None:
        """An ``accept()`` worked: the next shortage is news again."""
        if self._backoff:
            self._backoff = 0.0
            log.info("accepting connections on %s again", self._what)

    def timeout(self, other: Optional[float] = None) -> Optional[float]:
        """The select timeout: ``other`` (seconds, or None), or less while paused."""
        if not self.until:
            return other
        left = max(0.0, self.until - time.monotonic())
        return left if other is None else min(left, other)

    def resume_if_due(self) -> None:
        """Listen again once the pause is over (call after each select)."""
        if self.until and time.monotonic() >= self.until:
            self.until = 0.0
            self._selector.register(self._sock, selectors.EVENT_READ)


class _Reading:
    """A connection whose request is still arriving, watched by the accept loop."""

    __slots__ = ("conn", "peer", "data", "deadline")

    def __init__(self, conn: socket.socket, peer: Peer, deadline: float) -> None:
        self.conn = conn
        self.peer = peer
        self.data = b""
        self.deadline = deadline


class SocketServer:
    """Accepts connections, reads each request in the accept loop, runs ``handler`` on a worker.

    Requests are read in the accept loop, never on a worker: the loop only reads and writes
    without blocking and gives each whole request ``read_timeout`` seconds, so clients that
    trickle bytes (or send nothing) hold a little memory and a descriptor each, never a worker
    thread, and other users' connections have a small quota of their own, so they cannot crowd
    out the owner's. Workers only run handlers on complete requests; ``slow_ops`` caps how many
    of the long-waiting ops (a ``login_wait`` waits up to a minute) may hold one at once.

    With ``fast``, a complete request from our own uid that ``fast`` can answer from memory (a
    ``get`` on a fresh slot) is answered on the loop's own thread: no thread handoff. When
    ``accept()`` fails for want of descriptors, the loop stops accepting for a moment (doubling
    up to a second), says so once, and goes on serving what it holds.
    """

    def __init__(self, sock: socket.socket, handler: Handler, audit: AuditLog,
                 path: Optional[Path] = None, workers: int = 64, max_pending: int = 1024,
                 read_timeout: float = 5.0, wake_fd: Optional[int] = None,
                 fast: Optional[FastHandler] = None,
                 slow_ops: Optional[Dict[str, int]] = None) -> None:
        self._sock = sock
        self._fast = fast
        self._wake_fd = wake_fd  # readable now and then (a signal wakeup fd): drained, no more
        self._path = path
        self._handler = handler
        self._audit = audit
        self._pool = Workers(workers, "credhelper-conn")  # idle threads end after a burst
        self._pending = threading.BoundedSemaphore(max_pending)
        self._slow = {op: threading.BoundedSemaphore(n) for op, n in
                      (slow_ops if slow_ops is not None else SLOW_OPS).items()}
        self._read_timeout = read_timeout
        self._uid = os.getuid()
        self._stop_r, self._stop_w = os.pipe()
        self._pipe_lock = threading.Lock()
        self._pipe_open = True
        self._stopped = threading.Event()
        self._selector: Optional[selectors.BaseSelector] = None
        self._reading: Dict[socket.socket, _Reading] = {}
        self._foreign_reading = 0
        self._refusals_logged: Dict[int, float] = {}
        self._pause: Optional[AcceptPause] = None

    def serve_forever(self) -> None:
        """Accept until ``shutdown()``."""
        selector = self._selector = selectors.DefaultSelector()
        selector.register(self._sock, selectors.EVENT_READ)
        self._pause = AcceptPause(selector, self._sock, "the daemon socket")
        selector.register(self._stop_r, selectors.EVENT_READ)
        if self._wake_fd is not None:
            selector.register(self._wake_fd, selectors.EVENT_READ)
        try:
            while not self._stopped.is_set():
                for key, _ in selector.select(self._next_timeout()):
                    if key.fileobj == self._stop_r:
                        return
                    if key.fileobj == self._wake_fd:
                        _drain_pipe(self._wake_fd)
                    elif key.fileobj == self._sock:
                        self._accept()
                    else:  # a connection whose request is arriving
                        self._read(key.data)
                self._expire(time.monotonic())
        finally:
            for conn in list(self._reading):
                self._unwatch(conn).close()
            self._selector = None
            selector.close()
            self._close()

    def _next_timeout(self) -> Optional[float]:
        assert self._pause is not None
        deadlines = [r.deadline for r in self._reading.values()]
        first = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        return self._pause.timeout(first)

    def _expire(self, now: float) -> None:
        assert self._pause is not None
        self._pause.resume_if_due()
        for reading in [r for r in self._reading.values() if r.deadline <= now]:
            self._unwatch(reading.conn)
            late = RequestError("no complete request received in time")
            self._finish(reading.conn, late.to_wire())

    def _accept(self) -> None:
        assert self._pause is not None
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._pause.failed(exc)
            return
        self._pause.accepted()
        self._dispatch(conn)

    def _unwatch(self, conn: socket.socket) -> socket.socket:
        reading = self._reading.pop(conn)
        if reading.peer.uid != self._uid:
            self._foreign_reading -= 1
        if self._selector is not None:
            self._selector.unregister(conn)
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

    def _dispatch(self, conn: socket.socket) -> None:
        """Take a new connection: answer it now, or watch it until its request is in."""
        try:
            peer = peer_of(conn)
        except OSError:
            conn.close()
            return
        foreign = peer.uid != self._uid
        if foreign and self._foreign_reading >= MAX_FOREIGN_READING:
            self._refuse(conn, peer)
            return
        if not foreign and len(self._reading) - self._foreign_reading >= MAX_READING:
            self._finish(conn, Busy("too many connections waiting; try again").to_wire())
            return
        reading = _Reading(conn, peer, time.monotonic() + self._read_timeout)
        if self._take(reading):
            return
        assert self._selector is not None, "connections are dispatched by serve_forever"
        self._reading[conn] = reading
        if foreign:
            self._foreign_reading += 1
        self._selector.register(conn, selectors.EVENT_READ, reading)

    def _read(self, reading: _Reading) -> None:
        if self._take(reading):
            self._unwatch(reading.conn)

    def _take(self, reading: _Reading) -> bool:
        """Read what has arrived; True when the connection is done here (answered or handed on)."""
        conn = reading.conn
        try:
            while True:
                chunk = conn.recv(protocol.MAX_MESSAGE + 1, socket.MSG_DONTWAIT)
                reading.data += chunk
                if not chunk or b"\n" in chunk or len(reading.data) > protocol.MAX_MESSAGE:
                    break
        except (BlockingIOError, InterruptedError):
            return False  # more to come
        except OSError:
            conn.close()
            return True
        try:
            self._complete(conn, reading.peer, reading.data)
        except Exception:  # noqa: BLE001 - the accept loop must outlive any one client
            log.exception("unexpected error while reading a request")
            conn.close()
        return True

    def _complete(self, conn: socket.socket, peer: Peer, data: bytes) -> None:
        if peer.uid != self._uid:
            self._refuse(conn, peer)
            return
        line, newline, _ = data.partition(b"\n")
        if len(line) > protocol.MAX_MESSAGE:
            # The client is still sending: a worker drains it (briefly), or the reply is lost.
            self._pool_send(conn, protocol.encode(
                RequestError(f"message larger than {protocol.MAX_MESSAGE} bytes").to_wire()))
            return
        try:
            if not line and not newline:
                raise RequestError("no complete request received")
            request = protocol.parse_request(line)
        except CredhelperError as exc:
            self._finish(conn, exc.to_wire())
            return
        reply = self._fast(request, peer) if self._fast is not None else None
        if reply is None:
            self._submit(conn, peer, request)
            return
        self._finish(conn, reply)

    def _refuse(self, conn: socket.socket, peer: Peer) -> None:
        self._audit.write(event="refused", pid=peer.pid, uid=peer.uid, exe=peer.exe,
                          reason="peer uid differs from the daemon's")
        # The audit log has every refusal; the daemon log one line per user a minute, so another
        # user hammering the socket cannot rotate the owner's log away.
        now = time.monotonic()
        if now - self._refusals_logged.get(peer.uid, -REFUSAL_LOG_EVERY) >= REFUSAL_LOG_EVERY:
            self._refusals_logged[peer.uid] = now
            log.warning("refused a connection from uid %d (pid %d); more from it are in the "
                        "audit log only, for a minute", peer.uid, peer.pid)
        self._finish(conn, Forbidden("this daemon serves only its own user").to_wire())

    def _finish(self, conn: socket.socket, reply: Dict[str, Any]) -> None:
        """Send ``reply`` without blocking and close; a full send buffer finishes on a worker."""
        data = protocol.encode(reply)
        try:
            sent = conn.send(data, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # the client went away
            conn.close()
            return
        if sent < len(data):  # the loop may not wait for a client; a worker may
            self._pool_send(conn, data[sent:])
            return
        _drain_now(conn)
        conn.close()

    def _submit(self, conn: socket.socket, peer: Peer, request: Dict[str, Any]) -> None:
        slow = self._slow.get(request["op"])
        if slow is not None and not slow.acquire(blocking=False):
            busy = Busy(f"too many {request['op']} requests in flight; try again")
            self._finish(conn, busy.to_wire())
            return
        if not self._pending.acquire(blocking=False):
            if slow is not None:
                slow.release()
            self._finish(conn, Busy("too many requests in flight; try again").to_wire())
            return
        try:
            self._pool.submit(self._serve_one, conn, peer, request, slow)
        except RuntimeError:  # pool shut down
            self._pending.release()
            if slow is not None:
                slow.release()
            conn.close()

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

    def _serve_one(self, conn: socket.socket, peer: Peer, request: Dict[str, Any],
                   slow: Optional[threading.BoundedSemaphore]) -> None:
        try:
            conn.settimeout(self._read_timeout)
            self._reply(conn, self._answer(request, peer))
        except Exception:  # noqa: BLE001 - the daemon must outlive any one client
            log.exception("unexpected error while serving a client")
        finally:
            _drain(conn)
            conn.close()
            self._pending.release()
            if slow is not None:
                slow.release()

    def _answer(self, request: Dict[str, Any], peer: Peer) -> Dict[str, Any]:
        try:
            return self._handler(request, peer)
        except CredhelperError as exc:
            return exc.to_wire()
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
