"""Hostile and tricky URLs get no token: through real git, the helper executable and the socket.

The routing table's own test (test_routing.py) checks ``Router`` alone; here the same table, moved
onto the emulator's feed host (``https://localhost:PORT``, a non-443 port), goes through every
layer a token could slip out of: git's URL parsing and config matching, the helper's attribute
parsing, the socket, the daemon. One daemon serves the whole module.
"""

import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO, StringIO
from typing import Callable, List, Optional, Tuple

import pytest

import leaks
from credhelper import paths
from credhelper.client import Client
from credhelper.errors import CredhelperError
from credhelper.frontends import git as gitfront
from harness import BIN, Workspace
from hostile_urls import HOSTILE_URLS

SECOND_SCOPE = "api://credhelper-feed/.default"
SECRET_ENV = "CREDHELPER_TEST_SVC_SECRET"
# A password someone pasted into a URL: it must not reach the audit log or the daemon log.
PASTED = "hunter2-pasted-into-a-url-0123456789"
REFUSED = {"no_route", "bad_request", "ambiguous_route"}
# git itself stops at a NUL and decodes %XX in host and path before any helper runs, so these
# entries reach the helper as the route's own origin and prefix (where git would connect too,
# or nowhere: curl refuses a '%' in a host name). A token for them is the right answer.
GIT_NORMALIZES = ("\x00", "%00", "%zz", "%3a")


def adapt(url: str, port: int) -> str:
    """A URL of the table, moved from ``dev.azure.com`` (port 443) to ``localhost:port``."""
    host = f"localhost:{port}"
    url = (url.replace("dev.azure.com:443", host)
              .replace("dev.azure.com:444", f"localhost:{port + 1}")
              .replace("dev.azure.com:+443", f"localhost:+{port}")
              .replace("DEV.AZURE.COM", f"LOCALHOST:{port}"))
    url = re.sub(r"dev\.azure\.com(?=:)", "localhost", url)  # the other bad ports stay as they are
    # an empty label or a soft hyphen stays inside the host name, before the port
    url = re.sub(r"dev\.azure\.com(\.\.|\u00ad)", lambda m: f"localhost{m.group(1)}:{port}", url)
    return url.replace("dev.azure.com", host)


def port_specific(port: int) -> List[str]:
    """Tricks that need a non-443 port or a host that is also reachable by another name."""
    return [
        f"https://localhost:{port}@evil.example/contoso/",   # host:port as user:password
        f"https://localhost:{port + 1}/contoso/",            # the neighbouring port
        f"https://localhost:{port - 1}/contoso/",
        f"https://localhost/contoso/",                       # the default port
        f"https://127.0.0.1:{port}/contoso/",                # same server, not the routed name
        f"https://[::1]:{port}/contoso/",
        f"https://localhost.evil.example:{port}/contoso/",
        f"https://evil.localhost:{port}/contoso/",
        f"https://loc\u0430lhost:{port}/contoso/",           # Cyrillic 'а'
        "https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54:" + f"{port}/contoso/",
        f"https://localhost:{port}:{port}/contoso/",
        f"https://localhost%3a{port}/contoso/",
        f"http://localhost:{port}/contoso/",
        f"https://localhost:{port}/",                        # host only: two identities here
        f"https://localhost:{port}/contoso-evil/x",
        f"https://localhost:{port}/second-org/../other/x",
        f"https://entra:{PASTED}@localhost:{port}/contoso/",
    ]


# Raw helper input that no URL spells: attribute order, overrides, missing or odd parts.
def raw_inputs(port: int) -> List[str]:
    """``git-credential-entra get`` stdin that must produce no credential."""
    host = f"localhost:{port}"
    return [
        f"protocol=http\nhost={host}\npath=contoso/x\n",
        f"protocol=https\nhost={host}@evil.example\npath=contoso/x\n",
        f"protocol=https\nhost=evil.example\npath={host}/contoso/x\n",
        f"protocol=https\nhost={host}/contoso\npath=x\n",
        f"protocol=https\nhost={host}\\@evil.example\npath=contoso/x\n",
        f"protocol=https\nhost=localhost\npath=contoso/x\n",
        f"protocol=https\nhost=localhost:{port + 1}\npath=contoso/x\n",
        f"protocol=https\nhost=127.0.0.1:{port}\npath=contoso/x\n",
        f"protocol=https\nhost={host} \npath=contoso/x\n",
        f"protocol=https\nhost=\npath=contoso/x\n",
        "protocol=https\npath=contoso/x\n",
        f"host={host}\npath=contoso/x\n",
        f"protocol=https\nhost={host}\npath=contoso/../other/x\n",
        f"protocol=https\nhost={host}\npath=contosoevil/x\n",
        f"protocol=https\nhost={host}\n",                      # no path: ambiguous on this host
        f"protocol=https\nhost={host}\nhost=evil.example\npath=contoso/x\n",
        f"url=https://{host}/contoso/x\nhost=evil.example\n",
        f"url=https://{host}/contoso/x\nprotocol=http\n",
        f"\nprotocol=https\nhost={host}\npath=contoso/x\n",    # a blank line ends the input
        f"protocol=https\r\nhost=evil.example\r\npath={host}/contoso/x\r\n",
        f"protocol=https\nhost={host}\x00evil.example\npath=contoso/x\n",
        f"protocol=https\nhost={host}\npath=contoso/x\x00\n",
    ]


@pytest.fixture(scope="module")
def hostile_ws(module_ws: Workspace) -> Workspace:
    """Two identities on the feed host (so git sends paths), git configured, one daemon."""
    ws, emulator = module_ws, module_ws.em
    emulator.idp.clear_faults()
    ws.env[SECRET_ENV] = emulator.client_secret
    feed = emulator.feed_base
    accounts = ws.federated_account()
    accounts["svc"] = {"authority": f"{emulator.idp_base}/{emulator.tenant}",
                       "client_id": "secret-app", "flow": "client_secret",
                       "client_secret_env": SECRET_ENV, "ca_bundle": str(emulator.ca_file)}
    ws.write_config(accounts, [
        {"url": f"{feed}/contoso/", "account": "workspace", "preset": "azure-devops"},
        {"url": f"{feed}/second-org/", "account": "svc", "scopes": [SECOND_SCOPE]},
    ])
    ws.credhelper("configure", "git")
    # A catch-all as many people have it, so git hands every host to our helper, not just ours.
    ws.git("config", "--global", "--add", "credential.helper", "entra")
    ws.start_daemon()
    return ws


@pytest.fixture(scope="module")
def port(hostile_ws: Workspace) -> int:
    return int(hostile_ws.em.feed_base.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def urls(port: int) -> List[str]:
    table = [adapt(url, port) for url in HOSTILE_URLS] + port_specific(port)
    assert len(set(table)) >= 60
    return table


@pytest.fixture(scope="module")
def token(hostile_ws: Workspace) -> str:
    """The token the route does hand out, so the searches below look for the real thing."""
    reply = hostile_ws.client().get(f"{hostile_ws.em.feed_base}/contoso/x.git", "test")
    assert reply["username"] == "workspace"
    return Hidden(reply["token"])


class Hidden(str):
    """A token that shows as ``<token>`` in reprs, so a failing assert cannot print it."""

    def __repr__(self) -> str:
        return "<token>"


def _run(ws: Workspace, cmd: List[str], stdin: str) -> Tuple[int, bytes, bytes]:
    proc = subprocess.run(cmd, input=stdin.encode("utf-8", "surrogateescape"), env=ws.env,
                          capture_output=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def _in_parallel(check: Callable[[str], Optional[str]], items: List[str]) -> List[str]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return [problem for problem in pool.map(check, items) if problem]


def _handle(ws: Workspace, stdin: str) -> Tuple[int, bytes, bytes]:
    out, err = BytesIO(), StringIO()
    code = gitfront.handle("get", BytesIO(stdin.encode("utf-8", "surrogateescape")), out, err,
                           Client(ws.socket, timeout=30))
    return code, out.getvalue(), err.getvalue().encode()


def _run_all(ws: Workspace, cmd: List[str], inputs: List[str]) -> List[Tuple[str, int, bytes, bytes]]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda stdin: _run(ws, cmd, stdin), inputs))
    return [(stdin, *result) for stdin, result in zip(inputs, results)]


def _holding_credentials(ws: Workspace, results: List[Tuple[str, int, bytes, bytes]]) -> List[str]:
    """The inputs whose output holds any credential the emulator ever issued or saw."""
    secrets = [s.encode() for s in ws.em.idp.secrets_issued() if len(s) >= leaks.MIN_SECRET]
    return [repr(stdin) for stdin, _, out, err in results
            if any(secret in out or secret in err for secret in secrets)]


def test_git_credential_fill_hands_out_nothing(hostile_ws: Workspace, urls: List[str],
                                               token: str) -> None:
    ws = hostile_ws
    fill = ["git", "credential", "fill"]
    code, out, _ = _run(ws, fill, f"url={ws.em.feed_base}/contoso/x.git\n\n")
    works = code == 0 and f"password={token}\n".encode() in out
    assert works, "the route itself must work, or the refusals below prove nothing"

    audit = ws.state_dir / "audit.log"
    seen = len(audit.read_text().splitlines())
    results = _run_all(ws, fill, [f"url={url}\n\n" for url in urls])
    normalized = {repr(f"url={url}\n\n") for url in urls if any(m in url for m in GIT_NORMALIZES)}
    assert set(_holding_credentials(ws, results)) <= normalized
    # whatever git asked for, a token went only to the route's own origin and prefix
    records = [json.loads(line) for line in audit.read_text().splitlines()[seen:]]
    served = [r["url"] for r in records if r["event"] == "get" and r["outcome"] == "ok"]
    prefix = f"{ws.em.feed_base}/contoso"
    assert all(url == prefix or url.startswith(prefix + "/") for url in served), served
    # git echoes a password written into the URL itself; that is the only password it may print
    echoed = [repr(stdin) for stdin, _, out, _ in results if repr(stdin) not in normalized
              and any(line.startswith(b"password=") and line[9:].decode() not in stdin
                      for line in out.splitlines())]
    assert echoed == []


def git_decoded(path: str) -> str:
    """``path`` as git hands it to a helper: %XX decoded (except %00), bytes kept as bytes."""
    def one(match: "re.Match[str]") -> str:
        value = int(match.group(1), 16)
        return match.group(0) if value == 0 else bytes([value]).decode("utf-8", "surrogateescape")
    return re.sub(r"%([0-9A-Fa-f]{2})", one, path)


def test_helper_executable_hands_out_nothing(hostile_ws: Workspace, urls: List[str], port: int,
                                             token: str) -> None:
    ws = hostile_ws
    helper = [str(BIN / "git-credential-entra"), "get"]
    code, out, err = _run(ws, helper, f"protocol=https\nhost=localhost:{port}\npath=contoso/x.git\n\n")
    works = code == 0 and out.startswith(f"username=workspace\npassword={token}\n".encode())
    assert works, "the route itself must work, or the refusals below prove nothing"

    audit = ws.state_dir / "audit.log"
    seen = len(audit.read_text().splitlines())
    by_url = [f"url={url}\n\n" for url in urls]
    by_parts = []
    for url in urls:  # the same URL as separate attributes, the path decoded as git sends it
        scheme, _, rest = url.partition("://")
        host, _, path = rest.partition("/")
        decoded = git_decoded(path)
        if "\n" in decoded and "\n" not in path:
            continue  # git refuses to send a value holding a newline (CVE-2020-5260)
        by_parts.append(f"protocol={scheme}\nhost={host}\npath={decoded}\n\n")
    raw = [text + "\n" for text in raw_inputs(port)]
    results = _run_all(ws, helper, by_url + raw)
    # the attribute spellings of the table run through the same handler in this process: the
    # executable is main() around it, proven above and by the two lists before; it keeps this fast
    results += [(stdin, *_handle(ws, stdin)) for stdin in by_parts]

    # Answers for the route's own host and prefix, by git's reading of the input: url=
    # userinfo is git's user name and password, and git leaves bad or %00 escapes as they are.
    ours = f"localhost:{port}/contoso/"
    expected = {repr(text) for text in by_url if f"@{ours}" in text or f"{ours}%zz" in text}
    expected |= {repr(text) for text in by_parts if f"path=contoso/%00/" in text
                 or "path=contoso/%zz" in text}
    assert set(_holding_credentials(ws, results)) <= expected
    records = [json.loads(line) for line in audit.read_text().splitlines()[seen:]]
    served = [r["url"] for r in records if r["event"] == "get" and r["outcome"] == "ok"]
    assert all(url.startswith(f"https://{ours}") for url in served), served
    # stdout carries protocol only (at most quit=1 here), stderr at most one line
    noisy = [repr(stdin) for stdin, code, out, err in results
             if code != 0 or len(err.splitlines()) > 1
             or (repr(stdin) not in expected and out not in (b"", b"quit=1\n"))]
    assert noisy == []


def test_socket_refuses_and_the_audit_log_says_so(hostile_ws: Workspace, urls: List[str],
                                                  token: str) -> None:
    ws = hostile_ws
    audit = ws.state_dir / "audit.log"
    seen = len(audit.read_text().splitlines())

    def check(url: str) -> Optional[str]:
        try:
            reply = ws.client().get(url, "test")
        except CredhelperError as exc:
            if exc.code not in REFUSED or token in exc.message:
                return f"{url!r}: {exc.code}"
            return None
        return f"{url!r}: answered with a {'token' if reply.get('token') else 'reply'}"

    assert _in_parallel(check, urls) == []

    records = [json.loads(line) for line in audit.read_text().splitlines()[seen:]]
    gets = [r for r in records if r["event"] == "get"]
    assert len(gets) == len(urls)
    assert {r["outcome"] for r in gets} <= REFUSED
    everything = audit.read_text() + ws.logs()
    clean = token not in everything
    assert clean, "the token is in the daemon's logs"
    assert PASTED not in everything  # userinfo is masked before logging


def test_git_socket_hands_out_nothing(hostile_ws: Workspace, urls: List[str], port: int,
                                      token: str) -> None:
    """The same inputs as the helper executable's, through git's cache client on the git socket."""
    ws = hostile_ws
    sock = paths.git_cache_socket(ws.socket)
    cache = ["git", "credential-cache", f"--socket={sock}", "get"]
    code, out, _ = _run(ws, cache, f"protocol=https\nhost=localhost:{port}\npath=contoso/x.git\n")
    assert code == 0 and out.startswith(f"username=workspace\npassword={token}\n".encode()), \
        "the route itself must work, or the refusals below prove nothing"

    audit = ws.state_dir / "audit.log"
    seen = len(audit.read_text().splitlines())
    inputs = [f"url={url}\n" for url in urls] + raw_inputs(port)
    for url in urls:
        scheme, _, rest = url.partition("://")
        host, _, path = rest.partition("/")
        decoded = git_decoded(path)
        if "\n" not in decoded or "\n" in path:
            inputs.append(f"protocol={scheme}\nhost={host}\npath={decoded}\n")
    results = _run_all(ws, cache, inputs)
    ours = f"localhost:{port}/contoso/"
    expected = {repr(text) for text in inputs if f"@{ours}" in text or f"{ours}%zz" in text
                or "path=contoso/%00/" in text or "path=contoso/%zz" in text}
    assert set(_holding_credentials(ws, results)) <= expected
    records = [json.loads(line) for line in audit.read_text().splitlines()[seen:]]
    served = [r["url"] for r in records if r["event"] == "get" and r["outcome"] == "ok"]
    assert all(url.startswith(f"https://{ours}") for url in served), served
    # the git socket answers credentials or nothing: never quit=1, never a message
    noisy = [repr(stdin) for stdin, code, out, err in results
             if code != 0 or err or (repr(stdin) not in expected and out)]
    assert noisy == []


def test_dot_segments_git_decoded_from_escapes_get_nothing(hostile_ws: Workspace, port: int,
                                                           token: str) -> None:
    # git decodes %2F and %2e before the helper runs: the path would normalise into /contoso/
    # while git sends the request on the wire to /evil%2F..%2Fcontoso/x.
    ws = hostile_ws
    base = f"https://localhost:{port}"
    tricks = ["evil%2F..%2Fcontoso/x", "evil/%2e%2e/contoso/x", "contoso/%2e/x", "contoso/./x",
              "evil%2F%2E%2E%2Fcontoso/x"]
    results = _run_all(ws, ["git", "credential", "fill"], [f"url={base}/{t}\n\n" for t in tricks])
    assert _holding_credentials(ws, results) == []
    helper = [str(BIN / "git-credential-entra"), "get"]
    parts = [f"protocol=https\nhost=localhost:{port}\npath={git_decoded(t)}\n\n" for t in tricks]
    results = _run_all(ws, helper, parts)
    assert [(code, out) for _, code, out, _ in results] == [(0, b"")] * len(tricks)
    # the daemon's git socket applies the same check (git's own cache client in front)
    cache = ["git", "credential-cache", f"--socket={paths.git_cache_socket(ws.socket)}", "get"]
    results = _run_all(ws, cache, parts)
    assert [(code, out) for _, code, out, _ in results] == [(0, b"")] * len(tricks)
    # the plain path still works, so the refusals above are not an outage
    code, out, _ = _run(ws, helper, f"protocol=https\nhost=localhost:{port}\npath=contoso/x\n\n")
    assert code == 0 and f"password={token}\n".encode() in out
