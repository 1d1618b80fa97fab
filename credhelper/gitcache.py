"""git's credential-cache protocol on a second daemon socket: a warm git call starts no Python.

git's own client, ``git credential-cache --socket=PATH ACTION`` (C, builtin/credential-cache.c),
connects, writes ``action=ACTION`` and ``timeout=N`` lines and then the credential lines git gave
it, half-closes, and copies whatever comes back to git. On this socket the daemon answers it:
``get`` through the same routing, token slots, peer-uid check and audit log as the JSON socket;
``erase`` of the token we handed out drops it (git erases after a 401); ``store`` and ``exit``
are ignored (the daemon holds tokens itself, and only ``credhelper stop`` ends it).

A refusal or failure answers nothing here: the ``entra`` helper that ``configure git`` puts
behind the cache helper asks again and says why on git's stderr (this socket has no way to
reach it), with ``quit=1`` when the person must sign in.

While the daemon is down, git's ``store`` spawns git's own ``credential-cache--daemon`` on this
path. The daemon takes the path back when it starts: it asks that process to ``exit`` (which
removes its socket before it ends) and binds anew; ``configure git`` gives the cache helper a
short ``--timeout``, so nothing git's daemon held in the meantime outlives a token.
"""

import logging
import os
import selectors
import socket
import stat
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from . import paths
from .errors import ConfigError, CredhelperError
from .frontends.git import credential_pairs, parse, render, target_url
from .logs import AuditLog
from .listener import MAX_SOCKET_PATH, AcceptPause, Peer, peer_of
from .workers import Workers

if TYPE_CHECKING:
    from .ops import Core

log = logging.getLogger("credhelper.gitcache")

MAX_REQUEST = 64 * 1024
READ_TIMEOUT = 5.0
TAKEOVER_TIMEOUT = 2.0

# get(url, peer, may_wait): the daemon's reply granting a token; None when only a worker, which
# may wait for an acquisition, can tell; raises CredhelperError when the URL gets nothing.
Get = Callable[[str, Peer, bool], Optional[Dict[str, Any]]]
# erase(url, offered_token, peer): drop the held token if it is the one offered.
Erase = Callable[[str, str, Peer], None]
Request = Tuple[str, Dict[str, str], Dict[str, List[str]]]


def parse_request(data: bytes) -> Optional[Request]:
    """``(action, scalars, lists)`` of one request; None when git's client would not send it."""
    action, sep, rest = data.partition(b"\n")
    timeout, sep2, rest = rest.partition(b"\n")
    if not (sep and sep2 and action.startswith(b"action=") and timeout.startswith(b"timeout=")):
        return None
    scalars, lists = parse(rest)
    return action[len(b"action="):].decode("ascii", "replace"), scalars, lists


def answer(data: bytes, peer: Peer, get: Get, erase: Erase, may_wait: bool) -> Optional[bytes]:
    """The bytes to send back (often none); None when only a worker may answer."""
    request = parse_request(data)
    if request is None:
        return b""
    action, scalars, lists = request
    if action not in ("get", "erase"):
        return b""  # store, exit, and whatever later gits add: unknown actions are ignored
    url = target_url(scalars)
    if url is None:
        return b""
    if action == "erase":
        offered = scalars.get("credential") or scalars.get("password")
        if not offered:
            return b""
        if not may_wait:
            return None  # takes the token lock, which an acquisition may hold
        erase(url, offered, peer)
        return b""
    try:
        reply = get(url, peer, may_wait)
    except CredhelperError:
        return b""  # entra, behind us, asks again and tells the person why
    if reply is None:
        return None
    pairs = credential_pairs(reply, lists)
    return render(pairs) if pairs else b""


def bind_cache_socket(path: Path) -> socket.socket:
    """Listen at ``path`` (0600, private directory), sending git's own cache daemon away first."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ConfigError(f"socket path {path} is longer than a Unix socket allows")
    paths.ensure_private_dir(path.parent)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ConfigError(f"{path} exists and is not a socket; refusing to replace it")
        _send_away(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # born 0600
    try:
        sock.bind(os.fspath(path))
    finally:
        os.umask(old)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _send_away(path: Path) -> None:
    """Make ``path`` free: a stale socket is removed, git's cache daemon is asked to exit."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(TAKEOVER_TIMEOUT)
    try:
        try:
            probe.connect(os.fspath(path))
        except OSError:
            _unlink(path)  # nobody listens: left by a process that died
            return
        uid = peer_of(probe).uid
        if uid != os.getuid():
            raise ConfigError(f"a process of uid {uid} listens on {path}")
        # git's credential-cache--daemon removes its socket and then exits: EOF means done.
        # Anything else (another credhelper daemon) ignores the request and stays.
        try:
            probe.sendall(b"action=exit\ntimeout=0\n")
            probe.shutdown(socket.SHUT_WR)
            while probe.recv(4096):
                pass
        except OSError:
            pass
    finally:
        probe.close()
    if path.exists():
        again = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            again.connect(os.fspath(path))
        except OSError:
            _unlink(path)
        else:
            raise ConfigError(f"another process listens on {path} and did not leave")
        finally:
            again.close()


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class CacheServer:
    """Serves git's cache client: from memory on the accept thread when it can, else on a worker."""

    def __init__(self, sock: socket.socket, path: Optional[Path], get: Get, erase: Erase,
                 audit: AuditLog, workers: int = 16) -> None:
        self._sock = sock
        self._path = path
        self._inode = os.stat(path).st_ino if path is not None else None
        self._get = get
        self._erase = erase
        self._audit = audit
        self._uid = os.getuid()
        self._pool = Workers(workers, "credhelper-git")
        self._stop_r, self._stop_w = os.pipe()
        self._pipe_lock = threading.Lock()
        self._pipe_open = True

    def serve_forever(self) -> None:
        """Accept until ``shutdown()``; then let requests in flight finish, remove our socket."""
        selector = selectors.DefaultSelector()
        selector.register(self._sock, selectors.EVENT_READ)
        selector.register(self._stop_r, selectors.EVENT_READ)
        pause = AcceptPause(selector, self._sock, "the git socket")
        try:
            while True:
                for key, _ in selector.select(pause.timeout()):
                    if key.fileobj == self._stop_r:
                        return
                    try:
                        conn, _ = self._sock.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as exc:  # EMFILE and friends: keep serving the others
                        pause.failed(exc)
                        continue
                    pause.accepted()
                    self._dispatch(conn)
                pause.resume_if_due()
        finally:
            selector.close()
            # closed by this thread: an fd closed under select() leaves the loop deaf
            self._sock.close()
            self._remove_socket()
            self._pool.shutdown(wait=True, cancel=True)
            with self._pipe_lock:
                os.close(self._stop_r)
                os.close(self._stop_w)
                self._pipe_open = False

    def shutdown(self) -> None:
        """Make ``serve_forever`` return."""
        with self._pipe_lock:
            if self._pipe_open:  # else the loop has ended already
                os.write(self._stop_w, b"x")

    def _remove_socket(self) -> None:
        if self._path is None:
            return
        try:
            if os.lstat(self._path).st_ino == self._inode:
                os.unlink(self._path)
        except FileNotFoundError:
            pass

    def _dispatch(self, conn: socket.socket) -> None:
        try:
            peer = peer_of(conn)
            if peer.uid != self._uid:
                self._audit.write(event="refused", pid=peer.pid, uid=peer.uid, exe=peer.exe,
                                  reason="peer uid differs from the daemon's (git socket)")
                log.warning("refused a git-socket connection from uid %d (pid %d)",
                            peer.uid, peer.pid)
                conn.close()
                return
            data, complete = _read_now(conn)
            if complete:
                reply = answer(data, peer, self._get, self._erase, may_wait=False)
                if reply is not None and self._send_now(conn, reply):
                    return
            self._pool.submit(self._serve, conn, peer, data, complete)
        except RuntimeError:  # shutting down
            conn.close()
        except Exception:  # noqa: BLE001 - the accept loop must outlive any one client
            log.exception("unexpected error on the git socket")
            conn.close()

    @staticmethod
    def _send_now(conn: socket.socket, reply: bytes) -> bool:
        """Send without waiting and close; False when the rest needs a worker."""
        try:
            sent = conn.send(reply, socket.MSG_DONTWAIT) if reply else 0
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            sent = len(reply)  # the client went away: nothing more to do
        if sent < len(reply):
            return False  # a worker sends it all (a reply is a few KiB: this barely happens)
        conn.close()
        return True

    def _serve(self, conn: socket.socket, peer: Peer, start: bytes, complete: bool) -> None:
        try:
            conn.settimeout(READ_TIMEOUT)
            data = start if complete else _read_rest(conn, start)
            reply = answer(data, peer, self._get, self._erase, may_wait=True)
            if reply:
                conn.sendall(reply)
        except OSError:
            pass  # a silent or vanished client: nothing to tell it
        finally:
            conn.close()


def _read_now(conn: socket.socket) -> Tuple[bytes, bool]:
    """What has arrived, and whether the client has half-closed (the request is whole)."""
    chunks: List[bytes] = []
    size = 0
    while size <= MAX_REQUEST:
        try:
            chunk = conn.recv(65536, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return b"".join(chunks), False
        except OSError:
            return b"", True
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"", True  # oversized: answered with nothing


def _read_rest(conn: socket.socket, start: bytes) -> bytes:
    """Read until the client half-closes; an oversized request reads as nothing.

    ``READ_TIMEOUT`` bounds the whole request, not each recv: a client trickling a byte at a
    time would otherwise hold a worker for as long as it liked.
    """
    deadline = time.monotonic() + READ_TIMEOUT
    chunks = [start]
    size = len(start)
    while size <= MAX_REQUEST:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no complete request in time")
        conn.settimeout(left)
        chunk = conn.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    return b""


def for_core(core: "Core", daemon_socket: Path) -> Optional[CacheServer]:
    """The daemon's second socket beside ``daemon_socket``, answering through the same ``ops`` on
    the same ``core``; None (logged) when it cannot be bound: git then still has entra."""
    from . import ops  # the op layer; this module stays importable without it

    path = paths.git_cache_socket(daemon_socket)
    try:
        sock = bind_cache_socket(path)
    except (ConfigError, OSError) as exc:
        log.warning("no git cache-protocol socket (%s); git uses the entra helper",
                    getattr(exc, "message", None) or exc)
        return None

    def get(url: str, peer: Peer, may_wait: bool) -> Optional[Dict[str, Any]]:
        return ops.get(core, {"op": "get", "url": url, "for": "git"}, peer, may_wait)

    def erase(url: str, offered: str, peer: Peer) -> None:
        try:
            ops.invalidate(core, {"op": "invalidate", "url": url, "token": offered}, peer)
        except CredhelperError:
            pass  # not a routed URL: nothing of ours to drop

    return CacheServer(sock, path, get, erase, core.audit)
