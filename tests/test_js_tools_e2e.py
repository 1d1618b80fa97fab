"""Every JavaScript client a developer uses, after ``credhelper configure all``, against the emulator.

npm 11, yarn classic, yarn berry and bun are pinned in ``.tools/`` by ``make test`` (pnpm is
covered in test_npm_e2e.py). npm, pnpm, bun and yarn 1 read the npm block the daemon keeps in
``~/.npmrc``; yarn 2+ reads only ``~/.yarnrc.yml``, where the daemon keeps a block of its own.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from harness import Workspace, wait_for
from test_npm_e2e import DEPENDENCIES, assert_no_token, installed, npmrc_tokens, project

TOOLS = Path(__file__).resolve().parents[1] / ".tools"
NPM = TOOLS / "npm" / "node_modules" / ".bin" / "npm"
YARN1 = TOOLS / "yarn" / "node_modules" / ".bin" / "yarn"
BERRY = TOOLS / "berry" / "node_modules" / ".bin" / "yarn"
BUN = TOOLS / "bun" / "node_modules" / ".bin" / "bun"
NPM_WARN = re.compile(r"^npm warn", re.M | re.I)


def need(tool: Path) -> None:
    """Skip, saying why, when `make test` has not installed ``tool``."""
    if not tool.exists():
        pytest.skip(f"{tool.relative_to(TOOLS.parent)} is installed by `make test`; run it through make")


def yarnrc_tokens(ws: Workspace) -> List[str]:
    """The ``npmAuthToken`` values in the user's ``~/.yarnrc.yml``."""
    try:
        text = (ws.home / ".yarnrc.yml").read_text()
    except FileNotFoundError:
        return []
    return re.findall(r'^\s+npmAuthToken: "([^"]+)"$', text, re.M)


def js_env(ws: Workspace, cache: str) -> Dict[str, str]:
    """The workspace's environment for one run of a JS tool, with a cache of its own."""
    return dict(ws.env, npm_config_cache=str(ws.root / cache), npm_config_fetch_retries="0",
                YARN_CACHE_FOLDER=str(ws.root / cache / "yarn1"),
                YARN_ENABLE_TELEMETRY="0", YARN_ENABLE_GLOBAL_CACHE="0",
                YARN_ENABLE_IMMUTABLE_INSTALLS="0", BUN_INSTALL_CACHE_DIR=str(ws.root / cache / "bun"),
                PATH=f"{BERRY.parent}:{ws.env['PATH']}")


def berry_project(ws: Workspace, name: str) -> Path:
    """A yarn 2+ project using the private registry, node_modules linker, no lockfile yet."""
    path = ws.root / name
    path.mkdir()
    (path / ".yarnrc.yml").write_text(f'npmRegistryServer: "{ws.em.npm_url}"\n'
                                      "nodeLinker: node-modules\n")
    (path / "yarn.lock").write_text("")
    (path / "package.json").write_text(json.dumps(
        {"name": name, "version": "1.0.0", "private": True, "dependencies": DEPENDENCIES}))
    return path


def bearer_only(ws: Workspace, since: int, ok: Tuple[int, ...] = (200,)) -> List[dict]:
    """The feed requests since ``since``; every one came with our token and was answered ``ok``."""
    seen = ws.em.feeds.log[since:]
    assert seen and all(e["status"] in ok and e["auth"] == "bearer" for e in seen), seen
    return seen


@pytest.fixture(scope="module")
def js_ws(module_ws: Workspace) -> Workspace:
    """`configure all` (yarn on PATH) and a running daemon keeping ~/.npmrc and ~/.yarnrc.yml."""
    need(NPM)
    need(BERRY)
    ws = module_ws
    ws.default_config(npm=True)
    ws.npmrc.write_text("fund=false\ncolor=false\n")
    ws.credhelper("configure", "all", env=js_env(ws, "configure"))
    ws.start_daemon()
    assert wait_for(lambda: len(npmrc_tokens(ws)) == 1 and len(yarnrc_tokens(ws)) == 1, 15), \
        ws.daemon_output()
    return ws


def test_npm11_prints_no_warning_for_install_ci_view_whoami(js_ws: Workspace) -> None:
    ws = js_ws
    path = project(ws, "npm11")
    env = js_env(ws, "npm11-cache")
    version = ws.run([str(NPM), "--version"], env=env).stdout.strip()
    assert version.startswith("11.")
    outputs = []
    for args in (["install"], ["ci"], ["view", "hello-private", "version"], ["whoami"]):
        proc = ws.run([str(NPM), *args], cwd=str(path), env=env)
        outputs.append(proc.stdout + proc.stderr)
        assert not NPM_WARN.search(proc.stderr + proc.stdout), (args, proc.stderr)
    assert installed(path) == {"hello-private": "1.0.0", "@contoso/hello-scoped": "1.0.0"}
    assert outputs[2].strip() == "1.0.0" and outputs[3].strip() == "fed-app"
    text = ws.npmrc.read_text()
    assert ":tokenHelper" not in text and "always-auth" not in text
    assert_no_token(ws, npmrc_tokens(ws), *outputs)


def test_npm_publish_and_whoami_go_through_credhelper(js_ws: Workspace) -> None:
    ws = js_ws
    path = ws.root / "publish-me"
    path.mkdir()
    (path / ".npmrc").write_text(f"@contoso:registry={ws.em.npm_url}\n")
    (path / "package.json").write_text(json.dumps(
        {"name": "@contoso/published-by-npm", "version": "1.2.3", "main": "index.js"}))
    (path / "index.js").write_text("module.exports = 42;\n")
    env = js_env(ws, "publish-cache")
    since = len(ws.em.feeds.log)
    proc = ws.run([str(NPM), "publish"], cwd=str(path), env=env)
    assert not NPM_WARN.search(proc.stderr)
    # npm asks for the packument first: 404 for a name never published
    puts = [e for e in bearer_only(ws, since, ok=(200, 201, 404)) if e["method"] == "PUT"]
    assert [(e["path"], e["status"]) for e in puts] == [("/npm/@contoso%2fpublished-by-npm", 201)]
    assert ws.em.feeds.npm.versions("@contoso/published-by-npm").keys() == {"1.2.3"}
    again = ws.run([str(NPM), "publish"], cwd=str(path), env=env, check=False)
    assert again.returncode != 0 and "previously published" in again.stderr
    assert_no_token(ws, npmrc_tokens(ws), proc.stdout, proc.stderr, again.stderr)


def test_yarn_berry_installs_from_its_own_rc_and_follows_a_refresh(js_ws: Workspace) -> None:
    ws = js_ws
    yarnrc = ws.home / ".yarnrc.yml"
    assert yarnrc.stat().st_mode & 0o777 == 0o600
    env = js_env(ws, "berry-cache")
    assert ws.run([str(BERRY), "--version"], env=env, cwd=str(ws.root)).stdout.startswith("4.")
    path = berry_project(ws, "berry-first")
    since = len(ws.em.feeds.log)
    proc = ws.run([str(BERRY), "install"], cwd=str(path), env=env)
    assert installed(path) == {"hello-private": "1.0.0", "@contoso/hello-scoped": "1.0.0"}
    bearer_only(ws, since)
    whoami = ws.run([str(BERRY), "npm", "whoami"], cwd=str(path), env=env).stdout
    assert "fed-app" in whoami
    client = ws.client()
    old = yarnrc_tokens(ws)[0]
    client.invalidate(ws.em.npm_url, old)
    new = client.get(ws.em.npm_url)["token"]
    assert new != old
    assert wait_for(lambda: yarnrc_tokens(ws) == [new]), "~/.yarnrc.yml still holds the old token"
    # yarn's own `config set -H` re-serialises the file and drops our markers: the daemon
    # takes its block back (and the token yarn copied out of it)
    ws.run([str(BERRY), "config", "set", "-H", "enableGlobalCache", "false"], cwd=str(ws.root),
           env=env)
    assert wait_for(lambda: yarnrc_tokens(ws) == [new] and
                    (ws.home / ".yarnrc.yml").read_text().count("npmRegistries") == 1)
    assert "enableGlobalCache: false" in (ws.home / ".yarnrc.yml").read_text()
    again = berry_project(ws, "berry-after-refresh")
    since = len(ws.em.feeds.log)
    ws.run([str(BERRY), "install"], cwd=str(again), env=env)
    assert installed(again) == {"hello-private": "1.0.0", "@contoso/hello-scoped": "1.0.0"}
    bearer_only(ws, since)
    assert_no_token(ws, [old, new], proc.stdout, proc.stderr, whoami)


def test_yarn_classic_gets_scoped_packages_and_unscoped_ones_with_always_auth(
        js_ws: Workspace) -> None:
    """Yarn 1 sends a token for an unscoped package only with ``always-auth``. In the files it
    reads that from, npm 11 reads and warns about it too; ``YARN_ALWAYS_AUTH`` serves yarn 1 and
    npm, but yarn 2+ refuses to run with it set: no global place serves all three."""
    need(YARN1)
    ws = js_ws
    env = js_env(ws, "yarn1-cache")
    assert ws.run([str(YARN1), "--version"], env=env).stdout.startswith("1.22.")
    scoped = project(ws, "yarn1-scoped")
    (scoped / "package.json").write_text(json.dumps(
        {"name": "yarn1-scoped", "version": "1.0.0", "private": True,
         "dependencies": {"@contoso/hello-scoped": "^1.0.0"}}))
    since = len(ws.em.feeds.log)
    ws.run([str(YARN1), "install", "--non-interactive"], cwd=str(scoped), env=env)
    assert (scoped / "node_modules/@contoso/hello-scoped/package.json").exists()
    bearer_only(ws, since)

    both = project(ws, "yarn1-unscoped")

    def asks_anonymously() -> bool:
        """yarn 1 fails the install, having asked for the unscoped package without a token."""
        since = len(ws.em.feeds.log)
        failed = ws.run([str(YARN1), "install", "--non-interactive"], cwd=str(both), env=env,
                        check=False)
        return failed.returncode != 0 and any(
            e["path"] == "/npm/hello-private" and e["auth"] is None
            for e in ws.em.feeds.log[since:])

    assert asks_anonymously()
    # yarn's own file (~/.yarnrc) is not what its npm requests consult...
    yarnrc = ws.home / ".yarnrc"
    yarnrc.write_text(f'always-auth true\n"{ws.em.npm_url[len("https:"):]}:always-auth" true\n')
    try:
        assert asks_anonymously()
    finally:
        yarnrc.unlink()
    # ...but yarn merges YARN_* variables into every registry's settings, and npm never reads
    # them: YARN_ALWAYS_AUTH serves yarn 1 and npm...
    with_env = dict(env, YARN_ALWAYS_AUTH="true")
    since = len(ws.em.feeds.log)
    ws.run([str(YARN1), "install", "--non-interactive"], cwd=str(both), env=with_env)
    assert installed(both) == {"hello-private": "1.0.0", "@contoso/hello-scoped": "1.0.0"}
    bearer_only(ws, since)
    quiet = ws.run([str(NPM), "view", "hello-private", "version"], cwd=str(both), env=with_env)
    assert quiet.stdout.strip() == "1.0.0" and "npm warn" not in quiet.stderr
    shutil.rmtree(both / "node_modules")
    (both / "yarn.lock").unlink()
    # ...and yarn 2+ refuses to run at all with it in the environment: no global switch serves
    # npm 11, yarn 1 and yarn 2+ together, so credhelper sets none
    refused = ws.run([str(BERRY), "config", "get", "npmAlwaysAuth"], cwd=str(both), env=with_env,
                     check=False)
    assert refused.returncode != 0
    assert "Unrecognized or legacy configuration settings found: alwaysAuth" in refused.stdout
    # the only switch: always-auth in an npmrc, where npm 11 reads it too and warns
    with (both / ".npmrc").open("a") as handle:
        handle.write(f"{ws.em.npm_url[len('https:'):]}:always-auth=true\n")
    ws.run([str(YARN1), "install", "--non-interactive"], cwd=str(both), env=env)
    assert installed(both) == {"hello-private": "1.0.0", "@contoso/hello-scoped": "1.0.0"}
    view = ws.run([str(NPM), "view", "hello-private", "version"], cwd=str(both), env=env)
    assert re.search(r'npm warn Unknown project config "always-auth"', view.stderr)


def test_bun_installs_from_the_npm_block(js_ws: Workspace) -> None:
    need(BUN)
    ws = js_ws
    path = project(ws, "bun-project")
    since = len(ws.em.feeds.log)
    proc = ws.run([str(BUN), "install"], cwd=str(path), env=js_env(ws, "bun-cache"))
    assert installed(path) == {"hello-private": "1.0.0", "@contoso/hello-scoped": "1.0.0"}
    bearer_only(ws, since)
    assert_no_token(ws, npmrc_tokens(ws), proc.stdout, proc.stderr)


# undo ----------------------------------------------------------------------------------------

def refresh(ws: Workspace) -> str:
    """Make the daemon acquire a new token for the registry (as after a 401); returns it."""
    client = ws.client()
    client.invalidate(ws.em.npm_url, client.get(ws.em.npm_url)["token"])
    return client.get(ws.em.npm_url)["token"]


def sinks_kept(ws: Workspace) -> Dict[str, bool]:
    """Per sink, whether the running daemon says it keeps the file."""
    status = ws.client().call("status")
    return {name: status[name]["kept"] for name in ("npm", "yarn")}


def test_remove_stops_the_daemon_for_good_and_configure_brings_it_back(ws: Workspace) -> None:
    ws.default_config(npm=True)
    ws.npmrc.write_text("color=false\n")
    ws.credhelper("configure", "npm")
    ws.credhelper("configure", "yarn")
    ws.start_daemon()
    assert wait_for(lambda: npmrc_tokens(ws) and yarnrc_tokens(ws), 15), ws.daemon_output()

    out = ws.credhelper("configure", "npm", "--remove").stdout
    assert "removed the credhelper block" in out
    assert ws.npmrc.read_text() == "color=false\n"
    assert "removed the credhelper block" in ws.credhelper("configure", "yarn", "--remove").stdout
    assert not (ws.home / ".yarnrc.yml").exists()  # the daemon created it; nothing else was in it
    assert wait_for(lambda: sinks_kept(ws) == {"npm": False, "yarn": False})
    refresh(ws)  # each new token would be written to every kept file
    assert npmrc_tokens(ws) == [] and yarnrc_tokens(ws) == []

    ws.stop_daemon()
    ws.start_daemon()
    assert sinks_kept(ws) == {"npm": False, "yarn": False}
    refresh(ws)
    assert npmrc_tokens(ws) == [] and not (ws.home / ".yarnrc.yml").exists()

    ws.credhelper("configure", "npm")
    ws.credhelper("configure", "yarn")
    assert wait_for(lambda: npmrc_tokens(ws) and yarnrc_tokens(ws), 15), ws.daemon_output()
    assert ws.npmrc.read_text().startswith("color=false\n")


def test_configure_all_remove_undoes_every_tool(ws: Workspace) -> None:
    need(BERRY)
    ws.default_config(npm=True)
    ws.git("config", "--global", "credential.helper", "store")
    env = js_env(ws, "all-cache")
    ws.credhelper("configure", "all", env=env)
    ws.start_daemon()
    assert wait_for(lambda: npmrc_tokens(ws) and yarnrc_tokens(ws), 15), ws.daemon_output()
    origin = ws.em.feed_base
    helpers = ws.git("config", "--global", "--get-all", f"credential.{origin}.helper").stdout
    # reset, git's cache client on the daemon's git socket, the entra fallback
    assert helpers.startswith("\ncache --timeout=60 --socket=") and "git_main.py" in helpers

    out = ws.credhelper("configure", "all", "--remove", env=env).stdout
    # pip: off the record, then its netrc block out (uv and poetry were never configured here)
    assert [line.split(":")[0] for line in out.splitlines()] == ["yarn", "npm", "pip", "pip", "git"], out
    assert ws.git("config", "--global", "--get-all", f"credential.{origin}.helper",
                  check=False).stdout == ""
    assert ws.git("config", "--global", "credential.helper").stdout == "store\n"
    assert npmrc_tokens(ws) == [] and not (ws.home / ".yarnrc.yml").exists()
    record = json.loads((ws.state_dir / "tools.json").read_text())["tools"]
    assert {tool: entry["state"] for tool, entry in record.items()} == {
        "git": "removed", "npm": "removed", "pnpm": "removed", "yarn": "removed", "pip": "removed"}
    assert not (ws.home / ".netrc").exists()
    refresh(ws)
    assert npmrc_tokens(ws) == [] and yarnrc_tokens(ws) == []
    assert "not configured" in ws.credhelper("configure", "npm", "--remove").stdout


# doctor and sign-in -----------------------------------------------------------------------------

def doctor(ws: Workspace) -> Dict[str, dict]:
    """`credhelper doctor --json`: the last check of each name."""
    proc = ws.credhelper("doctor", "--json", check=False, cwd=str(ws.root))
    assert proc.returncode in (0, 1), proc.stderr
    return {c["name"]: c for c in json.loads(proc.stdout)["checks"]}


def test_doctor_checks_each_js_tool_and_names_the_fix(js_ws: Workspace) -> None:
    ws = js_ws
    checks = doctor(ws)
    assert {name: checks[name]["status"] for name in ("npm", "npm warnings", "yarn")} == {
        "npm": "ok", "npm warnings": "ok", "yarn": "ok"}, checks
    # what an older credhelper wrote for pnpm: npm 11 warns about it on every command
    legacy = ws.state_dir / "pnpm" / "old-helper"
    saved = ws.npmrc.read_text()
    with ws.npmrc.open("a") as handle:
        handle.write(f"{ws.em.npm_url[len('https:'):]}:tokenHelper={legacy}\n")
    view = ws.run([str(NPM), "view", "hello-private", "version", "--registry", ws.em.npm_url],
                  env=js_env(ws, "doctor-cache"))
    assert NPM_WARN.search(view.stderr)
    check = doctor(ws)["npm warnings"]
    assert check["status"] == "fail" and check["fix"].startswith("run: credhelper configure pnpm")
    ws.credhelper("configure", "pnpm")
    assert ws.npmrc.read_text() == saved
    assert doctor(ws)["npm warnings"]["status"] == "ok"


def test_before_sign_in_nothing_hangs_and_doctor_says_login(ws: Workspace) -> None:
    from signin import person_config

    need(NPM)
    need(BERRY)
    person_config(ws, npm=True)
    ws.credhelper("configure", "npm")
    ws.credhelper("configure", "yarn")
    ws.start_daemon()
    env = js_env(ws, "nobody-cache")
    npm = ws.run([str(NPM), "install"], cwd=str(project(ws, "npm-nobody")), env=env, check=False,
                 stdin=subprocess.DEVNULL, timeout=90)
    assert npm.returncode != 0 and "E401" in npm.stderr
    assert not NPM_WARN.search(npm.stderr)
    berry = ws.run([str(BERRY), "install"], cwd=str(berry_project(ws, "berry-nobody")), env=env,
                   check=False, stdin=subprocess.DEVNULL, timeout=90)
    assert berry.returncode != 0 and "YN0041" in berry.stdout
    checks = doctor(ws)
    for name in ("npm", "yarn"):
        assert checks[name]["status"] == "fail", checks[name]
        assert checks[name]["fix"].startswith("run: credhelper login work"), checks[name]
