"""Real npm and pnpm installs from the emulator's private registry, credentials from the daemon.

npm and pnpm both read the token the daemon keeps in the user npmrc's managed block (pnpm's
``tokenHelper`` would make npm 11 warn). pnpm comes from ``make test`` (``.tools/``, pinned in
the Makefile).
"""

import json
from pathlib import Path
from typing import Dict, List

import pytest

from credhelper.sinks.npmrc import BEGIN, END, registry_key
from harness import Workspace, wait_for

ROOT = Path(__file__).resolve().parents[1]
PNPM = ROOT / ".tools" / "node_modules" / ".bin" / "pnpm"
DEPENDENCIES = {"hello-private": "^1.0.0", "@contoso/hello-scoped": "^1.0.0"}




def npmrc_tokens(ws: Workspace) -> List[str]:
    """The ``_authToken`` values the user npmrc holds for the emulator's registry."""
    prefix = registry_key(ws.em.npm_url) + ":_authToken="
    try:
        text = ws.npmrc.read_text()
    except FileNotFoundError:
        return []
    return [line[len(prefix):] for line in text.splitlines() if line.startswith(prefix)]


def project(ws: Workspace, name: str) -> Path:
    """A project depending on a scoped and an unscoped private package, registry in its .npmrc."""
    path = ws.root / name
    path.mkdir()
    (path / ".npmrc").write_text(f"registry={ws.em.npm_url}\n@contoso:registry={ws.em.npm_url}\n")
    (path / "package.json").write_text(json.dumps(
        {"name": name, "version": "1.0.0", "private": True, "dependencies": DEPENDENCIES}))
    return path


def installed(path: Path) -> Dict[str, str]:
    """name -> version of what landed in node_modules."""
    found = {}
    for name in DEPENDENCIES:
        manifest = path / "node_modules" / name / "package.json"
        if manifest.exists():
            found[name] = json.loads(manifest.read_text())["version"]
    return found


def assert_no_token(ws: Workspace, tokens: List[str], *texts: str) -> None:
    """None of ``tokens`` in ``texts``, the daemon's logs, or npm's and pnpm's own log files."""
    logs = [p.read_text(errors="replace") for p in ws.root.rglob("*.log") if p.is_file()]
    found = [text for text in list(texts) + logs + [ws.logs()] if any(t in text for t in tokens)]
    assert found == [], "a token appears in output or in a log"


def npm_install(ws: Workspace, path: Path, cache: str) -> str:
    """``npm install`` in ``path`` with its own cache, always asking the registry."""
    env = dict(ws.env, npm_config_cache=str(ws.root / cache), npm_config_fetch_retries="0")
    proc = ws.run(["npm", "install", "--prefer-online", "--loglevel=http"], cwd=str(path), env=env)
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def npm_ws(module_ws: Workspace) -> Workspace:
    """The daemon with ``[npm] registries = [em.npm_url]``; the npmrc block written."""
    module_ws.default_config(npm=True)
    module_ws.npmrc.write_text("fund=false\ncolor=false\n")
    module_ws.start_daemon()
    assert wait_for(lambda: len(npmrc_tokens(module_ws)) == 1, 15), module_ws.daemon_output()
    return module_ws


def test_npm_installs_scoped_and_unscoped_private_packages(npm_ws: Workspace) -> None:
    ws = npm_ws
    path = project(ws, "npm-first")
    since = len(ws.em.feeds.log)
    output = npm_install(ws, path, "cache-first")
    assert installed(path) == {"hello-private": "1.0.0", "@contoso/hello-scoped": "1.0.0"}
    seen = ws.em.feeds.log[since:]
    assert {e["path"] for e in seen if e["status"] == 200 and e["auth"] == "bearer"} >= {
        "/npm/hello-private", "/npm/@contoso%2fhello-scoped",
        "/npm/hello-private/-/hello-private-1.0.0.tgz",
        "/npm/@contoso/hello-scoped/-/hello-scoped-1.0.0.tgz"}
    assert_no_token(ws, npmrc_tokens(ws), output)


def test_refreshed_token_is_rewritten_and_used(npm_ws: Workspace) -> None:
    ws = npm_ws
    client = ws.client()
    old = client.get(ws.em.npm_url)["token"]
    assert npmrc_tokens(ws) == [old]
    client.invalidate(ws.em.npm_url, old)  # as a tool that saw it rejected would
    new = client.get(ws.em.npm_url)["token"]
    rotated = new != old
    assert rotated
    # the daemon's on_token callback rewrites the block; nothing here writes the file
    assert wait_for(lambda: npmrc_tokens(ws) == [new]), "npmrc still holds the old token"
    assert ws.npmrc.read_text().startswith("fund=false\ncolor=false\n")
    path = project(ws, "npm-after-refresh")
    output = npm_install(ws, path, "cache-after-refresh")
    assert installed(path) == {"hello-private": "1.0.0", "@contoso/hello-scoped": "1.0.0"}
    assert_no_token(ws, [old, new], output)


@pytest.mark.parametrize("change", ["delete", "rewrite"])
def test_block_comes_back_when_the_npmrc_is_replaced(npm_ws: Workspace, change: str) -> None:
    ws = npm_ws
    token = npmrc_tokens(ws)
    assert len(token) == 1
    if change == "delete":
        ws.npmrc.unlink()
        others = ""
    else:
        others = "fund=false\ncolor=false\nsave-exact=true\n"
        ws.npmrc.write_text(others)
    assert wait_for(lambda: npmrc_tokens(ws) == token), "the block was not restored"
    text = ws.npmrc.read_text()
    assert text.startswith(others) and BEGIN in text and END in text
    assert ws.npmrc.stat().st_mode & 0o777 == 0o600


def test_pnpm_installs_from_the_npm_block(ws: Workspace) -> None:
    if not PNPM.exists():
        pytest.skip("pnpm is installed by `make test` (the .tools target); run it through make")
    ws.default_config(npm=True)
    out = ws.credhelper("configure", "pnpm").stdout
    assert "pnpm: reads the token block" in out
    ws.start_daemon()
    assert wait_for(lambda: len(npmrc_tokens(ws)) == 1, 15), ws.daemon_output()
    assert ":tokenHelper" not in ws.npmrc.read_text()
    path = project(ws, "pnpm-project")
    since = len(ws.em.feeds.log)
    env = dict(ws.env, CI="1")
    proc = ws.run([str(PNPM), "install", "--no-frozen-lockfile", "--reporter=append-only",
                   "--store-dir", str(ws.root / "pnpm-store")], cwd=str(path), env=env)
    assert installed(path) == {"hello-private": "1.0.0", "@contoso/hello-scoped": "1.0.0"}
    seen = ws.em.feeds.log[since:]
    assert seen and all(e["status"] == 200 and e["auth"] == "bearer" for e in seen), seen
    assert_no_token(ws, npmrc_tokens(ws), proc.stdout, proc.stderr)
