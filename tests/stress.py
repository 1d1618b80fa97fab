"""Generated hostile inputs and concurrent load for the daemon (tests/test_stress.py, make stress).

Every input comes from a seeded ``random.Random``, so a failure names its seed and index and
replays exactly. Everything goes to this machine's Unix socket; nothing leaves it.
"""

import json
import random
import statistics
import string
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO, StringIO
from typing import Any, Dict, List, Optional, Tuple

from credhelper import protocol
from credhelper.client import Client
from credhelper.frontends import git as gitfront
from harness import send_raw

# Ops the fuzzer may name: all but stop (a well-formed stop is obeyed, as it should be).
FUZZ_OPS = sorted(protocol.OPS - {"stop"})
FIELDS = ["v", "op", "url", "for", "token", "account", "wait", "cancel"]
GIT_KEYS = ["protocol", "host", "path", "url", "username", "password", "capability[]",
            "wwwauth[]", "credential", "authtype", "password_expiry_utc", "state[]", "quit"]
GIT_ACTIONS = ["get", "get", "get", "erase", "store", "", "GET", "capability"]
_GIT_OUT = ("username=", "password=", "password_expiry_utc=", "quit=", "capability[]=",
            "authtype=", "credential=", "ephemeral=")
_ODD = ["\x00", "\r", "\n", "\t", " ", "\\", "/", "..", ".", "%2e", "%2F", "%00", "@", ":", "#",
        "?", "\ud800", "\udfff", "\u202e", "\uff0e", "\u0430", "\ufeff", "%", "%zz", "\x7f", "[",
        "]", "=", "\u00ad", "\U0001f600"]


class Fuzzer:
    """Makes hostile inputs for the socket, the git helper and the keyring backend."""

    def __init__(self, seed: int, base_url: str) -> None:
        self.rng = random.Random(seed)
        self.base = base_url.rstrip("/")
        self.host = self.base.split("://", 1)[1]

    # -- building blocks ---------------------------------------------------------------------

    def text(self, longest: int = 40) -> str:
        rng = self.rng
        pool = rng.choice([string.printable, string.ascii_letters, "".join(_ODD), "./%"])
        out = "".join(rng.choice(pool) for _ in range(rng.randint(0, longest)))
        if rng.random() < 0.3:
            out += rng.choice(_ODD)
        return out

    def url(self) -> str:
        rng = self.rng
        scheme = rng.choice(["https", "https", "https", "http", "HTTPS", "ftp", "", "https:"])
        host = rng.choice([self.host, self.host, self.host.upper(), "evil.example",
                           f"{self.host}.evil.example", f"user:pw@{self.host}", self.text(12),
                           f"{self.host}@evil.example", self.host.replace("localhost", "127.0.0.1")])
        segments = [rng.choice(["x", "contoso", "..", ".", "%2e%2e", "a%2Fb", self.text(8), ""])
                    for _ in range(rng.randint(0, 5))]
        url = f"{scheme}://{host}/" + "/".join(segments)
        if rng.random() < 0.2:
            url += rng.choice(["?q=1", "#frag", "\\evil", "\r\nhost=evil", " "])
        return url

    def value(self, depth: int = 0) -> Any:
        rng = self.rng
        kind = rng.randrange(10 if depth < 3 else 7)
        if kind == 0:
            return rng.choice([0, 1, -1, 2 ** 63, -(2 ** 70), 1e308, 0.5])
        if kind == 1:
            return rng.choice([True, False, None])
        if kind in (2, 3, 4):
            return self.text()
        if kind == 5:
            return self.url()
        if kind == 6:
            return rng.choice(FUZZ_OPS)
        if kind == 7:
            return [self.value(depth + 1) for _ in range(rng.randint(0, 4))]
        if kind == 8:
            return {self.text(8): self.value(depth + 1) for _ in range(rng.randint(0, 4))}
        return json.loads("[" * 900 + "]" * 900) if rng.random() < 0.5 else "x" * rng.randint(1, 70000)

    # -- the three inputs ----------------------------------------------------------------------

    def request(self) -> bytes:
        """Bytes for the socket: a mutated request, or garbage."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.1:
            return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
        if roll < 0.15:
            return b"[" * rng.randint(500, 100000) + b"\n"
        message: Dict[str, Any] = {"v": 1, "op": rng.choice(FUZZ_OPS), "url": self.url(),
                                   "for": "fuzz"}
        for _ in range(rng.randint(0, 4)):
            field = rng.choice(FIELDS + [self.text(6)])
            if rng.random() < 0.2:
                message.pop(field, None)
            else:
                message[field] = self.value()
        if message.get("op") == "stop":
            message["op"] = "ping"
        data = json.dumps(message, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
        if rng.random() < 0.1:
            data = data[: rng.randint(0, len(data))]
        if rng.random() < 0.1:
            data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 20)))
        return data + (b"\n" if rng.random() < 0.9 else b"")

    def git_input(self) -> Tuple[str, bytes]:
        """An action and stdin for ``git-credential-entra``."""
        rng = self.rng
        lines = []
        for _ in range(rng.randint(0, 8)):
            key = rng.choice(GIT_KEYS + [self.text(6)])
            value = {"protocol": lambda: rng.choice(["https", "http", "HTTPS", self.text(5)]),
                     "host": lambda: rng.choice([self.host, self.text(20), f"{self.host}:1"]),
                     "url": self.url, "path": lambda: self.url().split("/", 3)[-1]}.get(
                         key, self.text)()
            lines.append(f"{key}={value}")
        if rng.random() < 0.6:
            lines = ["protocol=https", f"host={self.host}",
                     f"path={self.url().split('/', 3)[-1]}"] + lines
        text = rng.choice(["\n", "\r\n"]).join(lines) + "\n" + rng.choice(["\n", "", "junk\n"])
        # surrogatepass: a lone surrogate becomes the bytes no UTF-8 decoder accepts
        return rng.choice(GIT_ACTIONS), text.encode("utf-8", "surrogatepass")

    def git_socket_input(self) -> bytes:
        """A request for the daemon's git socket, as git's cache client frames it (or not)."""
        action, stdin = self.git_input()
        rng = self.rng
        head = f"action={action}\ntimeout={rng.choice(['60', '-1', 'x', ''])}\n".encode()
        if rng.random() < 0.1:
            head = head[: rng.randint(0, len(head))]
        return head + stdin

    def keyring_input(self) -> Tuple[str, Optional[str]]:
        """A (service, username) pair as keyring callers pass them."""
        rng = self.rng
        service = rng.choice([self.url(), self.host, self.text(), f"{self.host}:443", ""])
        return service, rng.choice([None, "", "me", self.text(10)])


def check_reply(data: bytes) -> Optional[str]:
    """None when ``data`` is one well-formed reply (or nothing: a closed connection)."""
    if not data:
        return None
    if not data.endswith(b"\n") or data.count(b"\n") != 1:
        return "not one line"
    reply = json.loads(data)
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        return f"no ok in {data[:80]!r}"
    if not reply["ok"] and not isinstance(reply.get("code"), str):
        return f"no code in {data[:80]!r}"
    if reply.get("code") == "error":
        return f"internal error: {reply.get('message')!r}"
    return None


TARGETS = ("socket", "git", "git_socket", "keyring")


def fuzz(socket_path: str, count: int, seed: int, base_url: str, workers: int = 8,
         git_socket: Optional[str] = None) -> Dict[str, Any]:
    """``count`` inputs over the socket, the git helper, the git socket and the keyring backend."""
    from credhelper.frontends.pip_keyring import CredhelperKeyring

    fuzzer = Fuzzer(seed, base_url)
    plan: List[Tuple[str, Any]] = []
    targets = [t for t in TARGETS if git_socket or t != "git_socket"]
    for _ in range(count):
        target = fuzzer.rng.choice(["socket"] + targets)
        make = {"socket": fuzzer.request, "git": fuzzer.git_input,
                "git_socket": fuzzer.git_socket_input, "keyring": fuzzer.keyring_input}[target]
        plan.append((target, make()))
    keyring = CredhelperKeyring()

    def one(index: int) -> Optional[str]:
        target, data = plan[index]
        try:
            if target == "socket":
                problem = check_reply(send_raw(socket_path, data))
            elif target == "git":
                problem = _git_problem(socket_path, *data)
            elif target == "git_socket":
                assert git_socket is not None
                problem = _git_lines_problem(send_raw(git_socket, data))
            else:
                problem = _keyring_problem(keyring, *data)
        except Exception as exc:  # noqa: BLE001 - any escape is a finding
            problem = f"{type(exc).__name__}: {exc}"
        return None if problem is None else f"seed {seed} input {index} ({target}): {problem}"

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        problems = [p for p in pool.map(one, range(count)) if p]
    return {"inputs": count, "seconds": round(time.monotonic() - start, 1),
            "by_target": {t: sum(1 for k, _ in plan if k == t) for t in TARGETS},
            "problems": problems}


def _git_problem(socket_path: str, action: str, stdin: bytes) -> Optional[str]:
    out, err = BytesIO(), StringIO()
    code = gitfront.handle(action, BytesIO(stdin), out, err, Client(socket_path, timeout=30))
    if code != 0:
        return f"exit {code}"
    if len(err.getvalue().splitlines()) > 1:
        return "more than one line on stderr"
    return _git_lines_problem(out.getvalue())


def _git_lines_problem(out: bytes) -> Optional[str]:
    """None when ``out`` is nothing but credential-protocol lines."""
    for line in out.decode("utf-8").split("\n")[:-1]:
        if not line.startswith(_GIT_OUT):
            return f"stdout line {line[:40]!r}"
    if out and not out.endswith(b"\n"):
        return "output without a final newline"
    return None


def _keyring_problem(keyring: Any, service: str, username: Optional[str]) -> Optional[str]:
    credential = keyring.get_credential(service, username)
    if credential is not None and not service:
        return "a credential for an empty service"
    keyring.get_password(service, username or "")
    return None


def load(socket_path: str, url: str, clients: int, seconds: float, processes: int = 4
         ) -> Dict[str, Any]:
    """``clients`` clients doing warm ``get``s back to back for ``seconds``; latencies in ms.

    The clients are threads spread over ``processes`` processes (one Python process cannot
    keep 500 clients busy on its own), all started together at one wall-clock moment.
    """
    import multiprocessing

    start_at = time.time() + 2.0 + 0.2 * processes  # after every process has started
    shares = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.starmap(_load_part, [(socket_path, url, n, seconds, start_at) for n in shares])
    flat = sorted(x for part in parts for per in part["latencies"] for x in per)
    errors = [e for part in parts for e in part["errors"]]
    elapsed = max(part["elapsed"] for part in parts)
    return {"clients": clients, "processes": processes, "seconds": round(elapsed, 1),
            "requests": len(flat), "per_second": round(len(flat) / elapsed), "errors": len(errors),
            "first_errors": errors[:5],
            "idle_clients": sum(1 for part in parts for per in part["latencies"] if not per),
            "p50_ms": round(statistics.median(flat), 2) if flat else None,
            "p99_ms": round(flat[int(len(flat) * 0.99) - 1], 2) if flat else None,
            "max_ms": round(flat[-1], 2) if flat else None}


def _load_part(socket_path: str, url: str, clients: int, seconds: float, start_at: float
               ) -> Dict[str, Any]:
    stop = threading.Event()
    latencies: List[List[float]] = [[] for _ in range(clients)]
    errors: List[str] = []

    def client(index: int) -> None:
        mine = latencies[index]
        c = Client(socket_path, timeout=60)
        time.sleep(max(0.0, start_at - time.time()))
        while not stop.is_set():
            began = time.perf_counter()
            try:
                if not c.get(url, for_="load").get("token"):
                    errors.append("no token")
            except Exception as exc:  # noqa: BLE001 - every failure counts
                errors.append(f"{type(exc).__name__}: {exc}")
            mine.append((time.perf_counter() - began) * 1000)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, start_at - time.time()) + seconds)
    stop.set()
    for thread in threads:
        thread.join(120)
    return {"latencies": latencies, "errors": errors,
            "elapsed": time.time() - start_at}
