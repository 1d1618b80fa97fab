"""HTTP plumbing shared by the emulator's servers: a request/response pair and a threaded server.

Each server is an ``App``: a callable from :class:`Request` to :class:`Response`. TLS handshakes
run in the connection's own thread, so a stalled client never blocks the accept loop.
"""

import json
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Request:
    """One HTTP request, fully read."""

    method: str
    path: str                       # raw (percent-encoded) path, no query
    query: Dict[str, str]
    headers: Message
    body: bytes
    client: Tuple[str, int]

    def form(self) -> Dict[str, str]:
        """The body as a form (``application/x-www-form-urlencoded``)."""
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))


@dataclass
class Response:
    """What to answer; ``drop`` closes the connection without answering."""

    status: int = 200
    body: bytes = b""
    headers: List[Tuple[str, str]] = field(default_factory=list)
    drop: bool = False
    reset: bool = False     # with drop: a TCP reset instead of a close
    trickle: float = 0.0    # send the body a byte at a time over this many seconds


App = Callable[[Request], Response]


def json_response(status: int, data: Any, headers: Tuple[Tuple[str, str], ...] = ()) -> Response:
    """A JSON response."""
    body = json.dumps(data).encode()
    return Response(status, body, [("Content-Type", "application/json; charset=utf-8")]
                    + list(headers))


def text_response(status: int, text: str, content_type: str = "text/plain") -> Response:
    """A text response."""
    return Response(status, text.encode(), [("Content-Type", content_type + "; charset=utf-8")])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK of the headers: 40 ms on every keep-alive request.
    disable_nagle_algorithm = True
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # the apps keep their own structured logs

    def date_time_string(self, timestamp: Optional[float] = None) -> str:
        """The ``Date`` header, shifted by the app's ``date_skew`` (to test clock checks)."""
        if timestamp is None:
            timestamp = time.time() + float(getattr(self.server.app, "date_skew", 0.0))
        return super().date_time_string(timestamp)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: List[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        request = Request(self.command, parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)),
                          self.headers, self._read_body(), self.client_address)
        try:
            response = self.server.app(request)
        except Exception:  # a bug in one handler must not kill the server
            import traceback
            traceback.print_exc()
            response = json_response(500, {"error": "server_error",
                                           "error_description": "emulator bug"})
        if response.drop:
            if response.reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD" and response.trickle and response.body:
            pause = response.trickle / len(response.body)
            for i in range(len(response.body)):
                self.wfile.write(response.body[i:i + 1])
                self.wfile.flush()
                time.sleep(pause)
        elif self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: Tuple[str, int], app: App,
                 tls: Optional[ssl.SSLContext]) -> None:
        self.app = app
        self.tls = tls
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is not None:
            request.settimeout(10)
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                return  # a client that does not trust us, or port scanners
            request.settimeout(None)
        try:
            super().finish_request(request, client_address)
        finally:
            request.close()


class Server:
    """One HTTP(S) server on a background thread."""

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 0,
                 tls: Optional[ssl.SSLContext] = None) -> None:
        self._server = _Server((host, port), app, tls)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)

    def start(self) -> "Server":
        """Start serving in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting and close the socket; in-flight handlers are daemon threads."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def server_tls(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server-side TLS context."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context
