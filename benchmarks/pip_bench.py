"""The Python tools' side of ``make bench``: the keyring command lines, and a 20-package install
with pip and with uv.

Each measure runs beside its baseline in the same run: a bare ``python -c pass`` of the same
interpreter (and keyring with its null backend), and the same packages from the emulator's open
(no auth) index with an empty netrc.
"""

import functools
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set, Tuple

from harness import BIN, Workspace
from stats import columns_in_turns, median_ms, percentile, table

PACKAGES = [f"bench-private-{i:02d}" for i in range(20)]
NULL_BACKEND = "keyring.backends.null.Keyring"
OUR_BACKEND = "credhelper.frontends.pip_keyring.CredhelperKeyring"


def _tool_env(ws: Workspace) -> Dict[str, str]:
    """The workspace env for pip and keyring: requests lets these CA variables beat --cert."""
    env = {k: v for k, v in ws.env.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    env.pop("PYTHON_KEYRING_BACKEND", None)
    return env


def _ensure_daemon(ws: Workspace) -> None:
    """A running daemon holding the feed's token (an earlier benchmark stops it)."""
    if not ws.client().ping():
        ws.start_daemon()
    ws.client().get(ws.em.pypi_url)


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_keyring(ws: Workspace, runs: int = 15) -> None:
    """pip's subprocess provider: credhelper-keyring and keyring's own CLI vs ``python -c pass``."""
    _ensure_daemon(ws)
    cmd = [str(BIN / "keyring"), "--mode=creds", "--output=json", "get", ws.em.pypi_url]
    ours_cmd = [str(BIN / "credhelper-keyring"), "--mode=creds", "--output=json", "get",
                ws.em.pypi_url]
    bare_cmd = [sys.executable, "-c", "pass"]
    ours_env = _tool_env(ws)
    null_env = dict(ours_env, PYTHON_KEYRING_BACKEND=NULL_BACKEND)
    answered = ws.run(cmd, env=ours_env, stdin=subprocess.DEVNULL)  # raises unless we answer
    assert '"password"' in answered.stdout
    named_env = dict(ours_env, PYTHON_KEYRING_BACKEND=OUR_BACKEND)
    assert '"password"' in ws.run(ours_cmd, env=ours_env, stdin=subprocess.DEVNULL).stdout
    commands = {
        "cli": lambda: ws.run(ours_cmd, env=ours_env, stdin=subprocess.DEVNULL),
        "bare": lambda: ws.run(bare_cmd, env=ours_env, stdin=subprocess.DEVNULL),
        "ours": lambda: ws.run(cmd, env=ours_env, stdin=subprocess.DEVNULL),
        "named": lambda: ws.run(cmd, env=named_env, stdin=subprocess.DEVNULL),
        "null": lambda: ws.run(cmd, env=null_env, check=False, stdin=subprocess.DEVNULL),
    }
    samples: Dict[str, List[float]] = {key: [] for key in commands}
    for command in (commands["null"], commands["cli"]):
        command()  # warm the page cache
    # interleaved, so a noisy moment on the machine hits every column alike
    for _ in range(runs):
        for key, command in commands.items():
            samples[key].append(_timed(command))
    bare = median_ms(samples["bare"])
    rows = [[label, f"{median_ms(samples[key]):.1f}", f"{percentile(samples[key], 90):.1f}",
             f"{median_ms(samples[key]) / bare:.2f}x"]
            for label, key in (
                ("`credhelper-keyring` (stdlib only), linked as `keyring`", "cli"),
                ("keyring's CLI, credhelper found by entry-point discovery", "ours"),
                ("keyring's CLI, credhelper named in PYTHON_KEYRING_BACKEND", "named"),
                ("keyring's CLI, its null backend named (answers nothing)", "null"),
                ("`python -c pass`, the same interpreter (baseline)", "bare"))]
    table(f"`keyring --mode=creds --output=json get URL` (pip's subprocess provider), "
          f"whole process, median of {runs}",
          ["command", "median ms", "p90 ms", "vs python -c pass"], rows)


def _netrc_env(ws: Workspace, env: Dict[str, str]) -> Dict[str, str]:
    """``env`` with pip, uv and poetry configured and the daemon's netrc block in place."""
    netrc = ws.home / ".netrc"
    ws.credhelper("configure", "pip")
    deadline = time.monotonic() + 20
    while not (netrc.exists() and "machine " in netrc.read_text()):
        assert time.monotonic() < deadline, "the daemon did not write the netrc block"
        time.sleep(0.05)
    return env


def _empty_netrc(ws: Workspace, env: Dict[str, str]) -> Dict[str, str]:
    """``env`` pointing pip and uv at an empty netrc: the open baseline sends no credential."""
    empty = ws.root / "empty.netrc"
    empty.write_text("")
    empty.chmod(0o600)
    return dict(env, NETRC=str(empty))


def _timed_install(ws: Workspace, cmd: List[str], target: Path, env: Dict[str, str]) -> float:
    """Run one install command; seconds, once every package is checked to have landed."""
    start = time.perf_counter()
    ws.run(cmd, env=env, stdin=subprocess.DEVNULL, timeout=300)
    elapsed = time.perf_counter() - start
    missing = [p for p in PACKAGES if not (target / p.replace("-", "_") / "__init__.py").exists()]
    assert not missing, f"not installed: {missing}"
    return elapsed


def _table_vs_open(title: str, columns: Dict[str, List[float]], labels: List[Tuple[str, str]],
                   digits: int, requests: Optional[Dict[str, str]] = None) -> None:
    """One row a column: its median, and what it costs over the ``open`` column; ``requests``
    adds what the feed saw of each column's installs."""
    base = statistics.median(columns["open"])
    rows = []
    for label, key in labels:
        median = statistics.median(columns[key])
        rows.append([label, f"{median:.{digits}f}", f"{(median - base) * 1000:+.0f}",
                     f"{(median / base - 1) * 100:+.1f} %"] + ([requests[key]] if requests else []))
    table(title, ["index", "total s", "vs open, ms", "vs open"]
          + (["requests (401s) per install"] if requests else []), rows)


def _install(ws: Workspace, index: str, provider: str, env: Dict[str, str], n: int,
             label: str = "") -> float:
    target = ws.root / f"pip-bench-{label or provider}-{n}"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-cache-dir",
           "--target", str(target), "--index-url", index, "--keyring-provider", provider,
           *PACKAGES]
    return _timed_install(ws, cmd, target, env)


def bench_pip(ws: Workspace, runs: int = 3) -> None:
    """`pip install` of 20 private packages through the daemon vs the same from an open index."""
    _ensure_daemon(ws)
    for name in PACKAGES:
        ws.em.feeds.add_wheel(name, "1.0.0")
    env = _tool_env(ws)
    # pip runs a keyring from outside its own scripts directory only (as pipx installs it)
    tools = ws.root / "pip-bench-bin"
    tools.mkdir(exist_ok=True)
    if not (tools / "keyring").exists():
        (tools / "keyring").symlink_to(BIN / "keyring")
    sub_env = dict(env, PATH=f"{tools}:{env['PATH']}")
    netrc_env = _netrc_env(ws, env)
    # the keyring providers and the open baseline see no netrc; the netrc column no keyring
    env, sub_env = _empty_netrc(ws, env), _empty_netrc(ws, sub_env)
    ws.em.feeds.open_access = True
    private = ws.em.pypi_url
    try:
        columns = columns_in_turns(runs, [
            ("netrc", lambda n: _install(ws, private, "disabled", netrc_env, n, "netrc")),
            ("import", lambda n: _install(ws, private, "import", env, n)),
            ("subprocess", lambda n: _install(ws, private, "subprocess", sub_env, n)),
            ("open", lambda n: _install(ws, ws.em.open_pypi_url, "disabled", env, n, "open"))])
    finally:
        ws.em.feeds.open_access = False
    _table_vs_open(f"`pip install` of {len(PACKAGES)} small private packages (--no-deps, no "
                   f"cache), whole command, median of {runs}", columns,
                   [("through the daemon's netrc block (what `configure pip` sets up)", "netrc"),
                    ("through the daemon, `--keyring-provider import`", "import"),
                    ("through the daemon, `--keyring-provider subprocess`", "subprocess"),
                    ("open index, no auth, empty netrc, keyring disabled", "open")], 2)


def _uv_install(ws: Workspace, index: str, env: Dict[str, str], label: str,
                seen: Dict[str, Set[Tuple[int, int]]], n: int) -> float:
    """One install from ``index``; an index given as a uv.toml path is read from that file.
    Adds to ``seen[label]`` how many requests the feed answered for it, and how many with 401."""
    target = ws.root / f"uv-bench-{label}-{n}"
    source = ["--config-file", index] if index.endswith(".toml") else ["--index-url", index]
    cmd = [_uv(), "pip", "install", "--quiet", "--no-deps", "--no-cache", "--target", str(target),
           *source, *PACKAGES]
    since = len(ws.em.feeds.log)
    elapsed = _timed_install(ws, cmd, target, env)
    answered = ws.em.feeds.log[since:]
    seen.setdefault(label, set()).add(
        (len(answered), sum(1 for e in answered if e["status"] == 401)))
    return elapsed


def _uv() -> str:
    found = sorted((Path(__file__).resolve().parent.parent / ".tools").glob("uv-*/bin/uv"))
    assert found, "uv is missing from .tools: run `make bench` (it installs the pinned tools)"
    return str(found[-1])


def _static_netrc(ws: Workspace, env: Dict[str, str]) -> Dict[str, str]:
    """``env`` pointing uv at a netrc written by hand with a token: what uv spends on auth alone."""
    host = ws.em.pypi_url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]
    static = ws.root / "static.netrc"
    static.write_text(f"machine {host} login workspace password "
                      f"{ws.client().get(ws.em.pypi_url)['token']}\n")
    static.chmod(0o600)
    return dict(env, NETRC=str(static))


def bench_uv(ws: Workspace, runs: int = 11) -> None:
    """`uv pip install` of 20 private packages through the netrc block vs the open index.

    uv sends every request without credentials first and answers the 401 from netrc, so another
    column gives the same private index a netrc written by hand: uv's own cost of auth, which
    no credential source can take away; and one marks the index ``authenticate = "always"``
    (the project's own setting), with which uv sends the netrc credentials up front. Runs
    interleave, the order turned each round.
    """
    _ensure_daemon(ws)
    for name in PACKAGES:
        ws.em.feeds.add_wheel(name, "1.0.0")
    env = dict(_tool_env(ws), SSL_CERT_FILE=str(ws.em.ca_file), UV_PYTHON=sys.executable,
               UV_NO_PROGRESS="1", UV_PYTHON_DOWNLOADS="never")
    netrc_env = _netrc_env(ws, env)
    static_env = _static_netrc(ws, env)
    open_env = _empty_netrc(ws, env)
    ws.em.feeds.open_access = True
    always = ws.root / "uv-always.toml"  # the index's own setting: send credentials up front
    always.write_text(f'[[index]]\nname = "private"\nurl = "{ws.em.pypi_url}"\n'
                      'default = true\nauthenticate = "always"\n')
    order = [("netrc", ws.em.pypi_url, netrc_env), ("always", str(always), netrc_env),
             ("static", ws.em.pypi_url, static_env), ("open", ws.em.open_pypi_url, open_env)]
    seen: Dict[str, Set[Tuple[int, int]]] = {}
    try:
        columns = columns_in_turns(runs, [
            (key, functools.partial(_uv_install, ws, index, key_env, key, seen))
            for key, index, key_env in order])
    finally:
        ws.em.feeds.open_access = False
        (ws.root / "static.netrc").unlink()
    _table_vs_open(f"`uv pip install` of {len(PACKAGES)} small private packages (--no-deps, no "
                   f"cache), whole command, median of {runs}", columns,
                   [("through the daemon's netrc block", "netrc"),
                    ("the same, the index marked `authenticate = \"always\"` in uv.toml", "always"),
                    ("the same index, a token written by hand into a netrc (uv's own auth cost)",
                     "static"),
                    ("open index, no auth, empty netrc", "open")], 3,
                   {key: ", ".join(f"{total} ({refused})" for total, refused in sorted(counts))
                    for key, counts in seen.items()})
