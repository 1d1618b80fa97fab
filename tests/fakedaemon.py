"""A stand-in daemon for front-end tests: a real Unix socket speaking ``credhelper.protocol``.

It answers ``get`` from a table of URL prefixes and records every request, so tests can run the
real ``git-credential-entra`` and ``keyring`` executables against it.
"""

import os
import shutil
import socket
import tempfile
import threading
import urllib.parse
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from credhelper import protocol
from credhelper.errors import AmbiguousRoute, CredhelperError, NoRoute, RequestError

Answer = Union[Tuple[str, str, float], CredhelperError]


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class FakeDaemon:
    """Serve ``answers`` (URL prefix -> (username, token, expires_on) or an error) on a socket."""

    def __init__(self, answers: Optional[Dict[str, Answer]] = None) -> None:
        self.answers: Dict[str, Answer] = dict(answers or {})
        self.requests: List[Dict[str, Any]] = []
        # AF_UNIX paths are limited to ~108 bytes; pytest's tmp_path can be longer.
        self._dir = Path(tempfile.mkdtemp(prefix="chfd-", dir="/tmp"))
        os.chmod(self._dir, 0o700)
        self.socket_path = self._dir / "daemon.sock"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(self.socket_path))
        self._sock.listen(16)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._stopping = False

    def __enter__(self) -> "FakeDaemon":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping = True
        try:
            socket.socket(socket.AF_UNIX).connect(str(self.socket_path))
        except OSError:
            pass
        self._thread.join(5)
        self._sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def ops(self, op: str) -> List[Dict[str, Any]]:
        """The recorded requests with this op."""
        return [r for r in self.requests if r.get("op") == op]

    def lookup(self, url: str) -> Tuple[str, str, float]:
        """Answer for ``url``: longest prefix; a path-less URL needs one answer for its host."""
        if not url.startswith("https://"):
            raise NoRoute(f"no route for {url}")
        if urllib.parse.urlsplit(url).path in ("", "/"):
            found = {repr(v): v for k, v in self.answers.items() if _origin(k) == _origin(url)}
            if len(found) > 1:
                raise AmbiguousRoute(f"several routes on {_origin(url)}")
            candidates = list(found.values())
        else:
            keys = sorted((k for k in self.answers if url.startswith(k)), key=len, reverse=True)
            candidates = [self.answers[keys[0]]] if keys else []
        if not candidates:
            raise NoRoute(f"no route for {url}")
        answer = candidates[0]
        if isinstance(answer, CredhelperError):
            raise answer
        return answer

    def _serve(self) -> None:
        while True:
            conn, _ = self._sock.accept()
            if self._stopping:
                conn.close()
                return
            with conn:
                try:
                    request = protocol.parse_request(protocol.read_message(conn))
                    self.requests.append(request)
                    reply = self._answer(request)
                except CredhelperError as exc:
                    reply = protocol.error_reply(exc)
                try:
                    conn.sendall(protocol.encode(reply))
                except OSError:
                    pass  # the client left without reading (a keyring priority probe does)

    def _answer(self, request: Dict[str, Any]) -> Dict[str, Any]:
        op = request["op"]
        if op == "ping":
            return {"ok": True}
        if op == "invalidate":
            return {"ok": True, "dropped": True}
        if op != "get":
            raise RequestError(f"fake daemon does not do {op}")
        username, token, expires_on = self.lookup(str(request.get("url")))
        return {"ok": True, "username": username, "token": token, "expires_on": expires_on}
