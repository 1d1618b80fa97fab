"""pip's side of ``make bench``: the keyring command line and a 20-package install.

Each measure runs beside its baseline in the same run: keyring with its null backend, and the
same packages from the emulator's open (no auth) index.
"""

import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List

from harness import BIN, Workspace
from stats import median_ms, percentile, table

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
    """`keyring --mode=creds --output=json get URL`: our backend vs keyring's null backend."""
    _ensure_daemon(ws)
    cmd = [str(BIN / "keyring"), "--mode=creds", "--output=json", "get", ws.em.pypi_url]
    ours_env = _tool_env(ws)
    null_env = dict(ours_env, PYTHON_KEYRING_BACKEND=NULL_BACKEND)
    answered = ws.run(cmd, env=ours_env, stdin=subprocess.DEVNULL)  # raises unless we answer
    assert '"password"' in answered.stdout
    named_env = dict(ours_env, PYTHON_KEYRING_BACKEND=OUR_BACKEND)
    commands = {
        "ours": lambda: ws.run(cmd, env=ours_env, stdin=subprocess.DEVNULL),
        "named": lambda: ws.run(cmd, env=named_env, stdin=subprocess.DEVNULL),
        "null": lambda: ws.run(cmd, env=null_env, check=False, stdin=subprocess.DEVNULL),
    }
    samples: Dict[str, List[float]] = {key: [] for key in commands}
    commands["null"]()  # warm the page cache
    # interleaved, so a noisy moment on the machine hits every column alike
    for _ in range(runs):
        for key, command in commands.items():
            samples[key].append(_timed(command))
    null = median_ms(samples["null"])
    rows = [[label, f"{median_ms(samples[key]):.1f}", f"{percentile(samples[key], 90):.1f}",
             f"{median_ms(samples[key]) - null:+.1f}"]
            for label, key in (
                ("credhelper, found by keyring's entry-point discovery (what pip runs)", "ours"),
                ("credhelper, named in PYTHON_KEYRING_BACKEND (no discovery)", "named"),
                ("keyring's null backend, named (answers nothing)", "null"))]
    table(f"`keyring --mode=creds --output=json get URL` (pip's subprocess provider), "
          f"whole process, median of {runs}",
          ["backend", "median ms", "p90 ms", "vs null, ms"], rows)


def _install(ws: Workspace, index: str, provider: str, env: Dict[str, str], n: int) -> float:
    target = ws.root / f"pip-bench-{provider}-{n}"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-cache-dir",
           "--target", str(target), "--index-url", index, "--keyring-provider", provider,
           *PACKAGES]
    start = time.perf_counter()
    ws.run(cmd, env=env, stdin=subprocess.DEVNULL, timeout=300)
    elapsed = time.perf_counter() - start
    missing = [p for p in PACKAGES if not (target / p.replace("-", "_") / "__init__.py").exists()]
    assert not missing, f"not installed: {missing}"
    return elapsed


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
    ws.em.feeds.open_access = True
    columns: Dict[str, List[float]] = {"import": [], "subprocess": [], "open": []}
    try:
        for n in range(runs):
            columns["import"].append(_install(ws, ws.em.pypi_url, "import", env, n))
            columns["subprocess"].append(_install(ws, ws.em.pypi_url, "subprocess", sub_env, n))
            columns["open"].append(_install(ws, ws.em.open_pypi_url, "disabled", env, n))
    finally:
        ws.em.feeds.open_access = False
    base = statistics.median(columns["open"])
    rows = []
    for label, key in (("through the daemon, `--keyring-provider import`", "import"),
                       ("through the daemon, `--keyring-provider subprocess`", "subprocess"),
                       ("open index, no auth, keyring disabled", "open")):
        median = statistics.median(columns[key])
        rows.append([label, f"{median:.2f}", f"{(median - base) * 1000:+.0f}"])
    table(f"`pip install` of {len(PACKAGES)} small private packages (--no-deps, no cache), "
          f"whole command, median of {runs}",
          ["index", "total s", "vs open, ms"], rows)

