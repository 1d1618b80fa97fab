"""The socket wire format: one JSON object and a newline each way, one request per connection.

This module is on the hot path: standard library only, no I/O beyond the socket it is given.
"""

TYPE_CHECKING = False  # the typing module itself costs milliseconds on every git call
if TYPE_CHECKING:
    import _socket  # not socket.py, which pulls in selectors and enum (socket.socket is one)
    from typing import Any, Dict

from . import flatjson

from .errors import CredhelperError, RequestError

VERSION = 1
MAX_MESSAGE = 64 * 1024

OPS = frozenset({
    "ping", "get", "invalidate", "status", "login_start", "login_wait", "logout", "reload", "stop",
    "registry_get",
})
# The type each known request field must have when present; unknown fields are ignored.
_FIELDS = {
    "v": (int,), "op": (str,), "url": (str,), "for": (str,), "token": (str,), "account": (str,),
    "wait": (int, float), "cancel": (bool,),
}


_ENCODER = None  # built once, on first use: json.dumps(**kw) builds a new encoder per call


def encode(message: "Dict[str, Any]") -> bytes:
    """Serialise one message as a single JSON line."""
    flat = flatjson.dumps(message)  # no json import for what git and pip send and receive
    if flat is not None:
        return flat.encode("ascii") + b"\n"
    global _ENCODER
    if _ENCODER is None:
        import json
        _ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)
    return _ENCODER.encode(message).encode("ascii") + b"\n"


def decode(data: bytes, limit: int = MAX_MESSAGE) -> "Dict[str, Any]":
    """Parse one message; anything but a JSON object is a ``RequestError``."""
    if len(data) > limit:
        raise RequestError(f"message larger than {limit} bytes")
    try:
        text = data.decode("utf-8")
        message = flatjson.loads(text)
        if message is None:  # not flat, or not JSON at all: json has the last word
            import json
            message = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError("message is not a JSON object") from exc
    except RecursionError as exc:  # JSON nested a thousand deep
        raise RequestError("message is nested too deeply") from exc
    if not isinstance(message, dict):
        raise RequestError("message is not a JSON object")
    return message


def parse_request(data: bytes) -> "Dict[str, Any]":
    """Decode a request and check its version and op."""
    request = decode(data)
    for key, types in _FIELDS.items():
        value = request.get(key)
        # bool is an int to Python, never a version, a number of seconds or a string
        if value is not None and (not isinstance(value, types) or (
                isinstance(value, bool) and bool not in types)):
            raise RequestError(f"{key!r} must be {_KIND[types]}")
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:  # a lone surrogate, from a \ud800 escape
                raise RequestError(f"{key!r} is not valid Unicode text") from exc
    if request.get("v", VERSION) != VERSION:
        raise RequestError(f"unsupported protocol version {request.get('v')!r}")
    op = request.get("op")
    if op not in OPS:
        raise RequestError(f"unknown op {str(op)[:40]!r}")
    return request


_KIND = {(int,): "an integer", (str,): "a string", (int, float): "a number",
         (bool,): "true or false"}


def read_message(sock: "_socket.socket", limit: int = MAX_MESSAGE, start: bytes = b"") -> bytes:
    """Read until newline or EOF; more than ``limit`` bytes is a ``RequestError``.

    ``start`` is what was already read from ``sock`` (the daemon's accept loop peeks first).
    """
    chunks = [start] if start else []
    size = len(start)
    while b"\n" not in start and size <= limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if b"\n" in chunk:
            break
        if size > limit:
            raise RequestError(f"message larger than {limit} bytes")
    data = b"".join(chunks)
    line, _, _ = data.partition(b"\n")
    if len(line) > limit:
        raise RequestError(f"message larger than {limit} bytes")
    return line


def error_reply(exc: "CredhelperError") -> "Dict[str, Any]":
    """The reply for a failed request."""
    return exc.to_wire()
