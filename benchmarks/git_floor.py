"""The least a Python git helper can do, for `make bench` only: a floor, not a helper to use.

One file, builtin modules only (``_socket``, ``posix``, ``sys``), no checks of any kind (no
socket-directory or peer check, no routing of hostile input, no error handling): read git's
lines, one ``get`` over the daemon's socket, print the token. What this costs over git
credential-cache is what starting CPython costs; credhelper's fallback helper is measured
against it in the same run.
"""

import _socket
import posix
import sys

if __name__ == "__main__":
    fields = dict(line.split("=", 1) for line in sys.stdin.read().splitlines() if "=" in line)
    url = "https://" + fields.get("host", "") + "/" + fields.get("path", "")
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.connect(posix.environ[b"CREDHELPER_SOCKET"].decode())
    sock.sendall(b'{"v":1,"op":"get","for":"git","url":"' + url.encode() + b'"}\n')
    sock.shutdown(_socket.SHUT_WR)
    reply = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        reply += chunk
    start = reply.find(b'"token":"') + len(b'"token":"')
    sys.stdout.buffer.write(b"username=workspace\npassword=" + reply[start:reply.find(b'"', start)]
                            + b"\n")
