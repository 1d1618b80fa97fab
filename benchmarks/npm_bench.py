"""npm's side of ``make bench``: a 20-package ``npm install`` through credhelper and without it.

Through credhelper, npm reads the token the daemon keeps in ``~/.npmrc``; the baseline is the same
packages from the emulator's open (no auth) registry, in the same run, runs interleaved. A third
column sends a token written by hand to the open registry: what npm itself spends on auth, so
the difference to it is credhelper's alone.
"""

import json
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict

from harness import Workspace, wait_for
from run import table
from stats import columns_in_turns

ROOT = Path(__file__).resolve().parents[1]
NPM = ROOT / ".tools" / "npm" / "node_modules" / ".bin" / "npm"
PACKAGES = [f"bench-npm-{i:02d}" for i in range(20)]


def _project(ws: Workspace, name: str, registry: str) -> Path:
    path = ws.root / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    (path / ".npmrc").write_text(f"registry={registry}\n")
    (path / "package.json").write_text(json.dumps(
        {"name": name, "version": "1.0.0", "private": True,
         "dependencies": {p: "1.0.0" for p in PACKAGES}}))
    return path


def _install(ws: Workspace, registry: str, label: str, n: int, **env_extra: str) -> float:
    """One `npm install` with an empty cache and no lockfile; seconds."""
    path = _project(ws, f"npm-bench-{label}-{n}", registry)
    env = dict(ws.env, npm_config_cache=str(ws.root / f"npm-bench-cache-{label}-{n}"), **env_extra)
    start = time.perf_counter()
    ws.run([str(NPM), "install", "--no-audit", "--no-fund"], cwd=str(path), env=env,
           stdin=subprocess.DEVNULL, timeout=300)
    elapsed = time.perf_counter() - start
    missing = [p for p in PACKAGES if not (path / "node_modules" / p / "package.json").exists()]
    assert not missing, f"not installed: {missing}"
    return elapsed


def _measure(ws: Workspace, registry: str, label: str, extra: Dict[str, str]
             ) -> Callable[[int], float]:
    return lambda n: _install(ws, registry, label, n, **extra)


def bench_npm(ws: Workspace, runs: int = 6) -> None:
    """`npm install` of 20 private packages through the daemon's npm block vs the open registry."""
    if not NPM.exists():
        print("\n(npm benchmark skipped: `make bench` installs the pinned npm into .tools/)")
        return
    for name in PACKAGES:
        ws.em.feeds.add_npm(name, "1.0.0")
    ws.default_config(npm=True)
    if not ws.client().ping():
        ws.start_daemon()
    ws.client().call("reload")
    prefix = "//" + ws.em.npm_url.split("://", 1)[1] + ":_authToken="
    assert wait_for(lambda: ws.npmrc.exists() and prefix in ws.npmrc.read_text(), 15)
    static = ws.root / "npm-bench-static.npmrc"
    static.write_text("//{}:_authToken={}\n".format(ws.em.open_npm_url.split("://", 1)[1],
                                                    ws.client().get(ws.em.npm_url)["token"]))
    static.chmod(0o600)
    ws.em.feeds.open_access = True
    order = [("ours", ws.em.npm_url, {}),
             ("static", ws.em.open_npm_url, {"NPM_CONFIG_USERCONFIG": str(static)}),
             ("open", ws.em.open_npm_url, {})]
    try:
        columns = columns_in_turns(runs, [(key, _measure(ws, registry, key, extra))
                                          for key, registry, extra in order])
    finally:
        ws.em.feeds.open_access = False
        static.unlink()
    base = statistics.median(columns["open"])
    rows = []
    for label, key in (("through the daemon (token block in ~/.npmrc)", "ours"),
                       ("open registry, a token written by hand (npm's own auth cost)", "static"),
                       ("open registry, no auth", "open")):
        median = statistics.median(columns[key])
        rows.append([label, f"{median:.2f}", f"{(median / base - 1) * 100:+.1f} %"])
    table(f"`npm install` of {len(PACKAGES)} small private packages (npm "
          f"{ws.run([str(NPM), '--version']).stdout.strip()}, empty cache, no lockfile), "
          f"whole command, median of {runs}", ["registry", "total s", "vs open"], rows)
