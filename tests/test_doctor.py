"""`credhelper doctor` against a real set-up: healthy first, then one thing broken at a time.

One workspace (daemon, git, pip, npm all configured) is shared by the module; each test breaks
one thing on purpose, runs the real CLI, checks the finding and its fix line, and repairs it.
"""

import json
import socket
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from harness import ADO, Workspace, wait_for

pytestmark = pytest.mark.timeout(120)


def routes(em: Any) -> List[Dict[str, Any]]:
    """Path-prefixed routes (so git needs useHttpPath), one account."""
    return [{"url": f"{em.feed_base}/{prefix}/", "account": "workspace", "scopes": [ADO]}
            for prefix in ("git", "pypi", "npm")]


def healthy_config(ws: Workspace) -> None:
    ws.write_config(ws.federated_account(), routes(ws.em), npm=[ws.em.npm_url])


@pytest.fixture(scope="module")
def shop(module_ws: Workspace) -> Workspace:
    ws = module_ws
    ws.workspace_root = ws.root / "workspace"
    ws.workspace_root.mkdir()
    ws.env["CREDHELPER_WORKSPACE_ROOT"] = str(ws.workspace_root)
    healthy_config(ws)
    ws.credhelper("configure", "all")
    ws.start_daemon()
    # the daemon writes the npm block once it has a token
    assert wait_for(lambda: "_authToken=" in (ws.npmrc.read_text() if ws.npmrc.exists() else ""),
                    15), ws.daemon_output()
    netrc = ws.home / ".netrc"  # and the netrc block for pip
    assert wait_for(lambda: netrc.exists() and "machine localhost" in netrc.read_text(), 15)
    return ws


def doctor(ws: Workspace, **env: str) -> Tuple[int, List[Dict[str, Any]]]:
    """Run `credhelper doctor --json` outside any git checkout; (exit code, checks)."""
    proc = ws.credhelper("doctor", "--json", check=False, cwd=str(ws.root), env=dict(ws.env, **env))
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] == (proc.returncode == 0)
    return proc.returncode, report["checks"]


def failed(checks: List[Dict[str, Any]], name: str, text: str) -> Dict[str, Any]:
    """The one failed check named ``name`` (prefix) whose message holds ``text``; it has a fix."""
    hits = [c for c in checks if c["status"] == "fail" and c["name"].startswith(name)
            and text in c["message"]]
    assert len(hits) == 1, json.dumps(checks, indent=1)
    assert hits[0]["fix"], hits[0]
    return hits[0]


def only_failures(checks: List[Dict[str, Any]]) -> List[str]:
    return sorted(c["name"] for c in checks if c["status"] == "fail")


def test_healthy_setup_exits_0(shop: Workspace) -> None:
    code, checks = doctor(shop)
    assert code == 0, json.dumps(checks, indent=1)
    status = {c["name"]: c["status"] for c in checks}
    for name in ("config", "daemon", "permissions", "git", "pip", "npm", "idp workspace", "clock",
                 "token workspace", "workspace"):
        assert status[name] == "ok", (name, checks)
    assert status["key storage"] in ("ok", "warn")
    human = shop.credhelper("doctor", cwd=str(shop.root))
    assert human.stdout.splitlines()[0].startswith("✓ config:")
    assert "✗" not in human.stdout


def test_bad_config(shop: Workspace) -> None:
    shop.config_path.write_text(shop.config_path.read_text() + "\n[accounts.workspace.extra]\nx = 1\n")
    try:
        code, checks = doctor(shop)
        assert code == 1
        check = failed(checks, "config", "config.toml")
        assert str(shop.config_path) in check["fix"]
    finally:
        healthy_config(shop)
        shop.credhelper("reload")


def test_config_writable_by_others(shop: Workspace) -> None:
    shop.config_path.chmod(0o664)
    try:
        code, checks = doctor(shop)
        assert code == 1
        check = failed(checks, "config", "writable by other users")
        assert check["fix"] == f"run: chmod 600 {shop.config_path}"
    finally:
        shop.config_path.chmod(0o600)
        shop.credhelper("reload")


def test_daemon_down(shop: Workspace) -> None:
    shop.stop_daemon()
    try:
        code, checks = doctor(shop)
        assert code == 1
        assert "credhelper start" in failed(checks, "daemon", "not running")["fix"]
        assert only_failures(checks) == ["daemon"]  # the rest is fine or cannot be judged
    finally:
        shop.start_daemon()


def test_loose_socket_and_state_modes(shop: Workspace) -> None:
    log = shop.state_dir / "daemon.log"
    shop.socket.parent.chmod(0o755)
    shop.state_dir.chmod(0o750)
    log.chmod(0o644)
    try:
        code, checks = doctor(shop)
        assert code == 1
        assert failed(checks, "socket dir", "mode 755")["fix"] == f"run: chmod 700 {shop.socket.parent}"
        assert failed(checks, "state dir", "mode 750")["fix"] == f"run: chmod 700 {shop.state_dir}"
        assert failed(checks, "state file", "daemon.log")["fix"] == f"run: chmod 600 {log}"
    finally:
        shop.socket.parent.chmod(0o700)
        shop.state_dir.chmod(0o700)
        log.chmod(0o600)


def test_storing_helper_before_ours(shop: Workspace) -> None:
    key = f"credential.{shop.em.feed_base}.helper"
    shop.git("config", "--global", "--unset-all", key)
    shop.git("config", "--global", "--add", key, "store")
    shop.git("config", "--global", "--add", key, "entra")
    try:
        code, checks = doctor(shop)
        assert code == 1
        check = failed(checks, "git", "'store' (global config) comes before credhelper")
        assert check["fix"] == "run: credhelper configure git"
    finally:
        shop.credhelper("configure", "git")
    assert doctor(shop)[0] == 0  # and configure's answer is the one doctor accepts


def test_useHttpPath_missing(shop: Workspace) -> None:
    shop.git("config", "--global", "--unset", f"credential.{shop.em.feed_base}.useHttpPath")
    try:
        code, checks = doctor(shop)
        assert code == 1
        assert failed(checks, "git", "useHttpPath is off")["fix"] == "run: credhelper configure git"
    finally:
        shop.credhelper("configure", "git")


def test_pip_reads_another_netrc_or_an_entry_that_wins(shop: Workspace) -> None:
    other = shop.root / "other.netrc"
    other.write_text("machine example.org login me password elsewhere\n")
    other.chmod(0o600)
    code, checks = doctor(shop, NETRC=str(other))
    assert code == 1
    assert "credhelper stop" in failed(checks, "pip", "the daemon writes")["fix"]
    netrc = shop.home / ".netrc"
    saved = netrc.read_text()
    netrc.write_text(saved + "machine localhost login me password mine\n")
    try:
        code, checks = doctor(shop)
        assert code == 1
        assert "delete that entry" in failed(checks, "pip", "another 'machine localhost'")["fix"]
    finally:
        netrc.write_text(saved)


def test_pip_not_configured(shop: Workspace) -> None:
    shop.credhelper("configure", "pip", "--remove")
    try:
        code, checks = doctor(shop)
        assert [c["fix"] for c in checks if c["name"] == "pip" and c["status"] == "warn"] == [
            "run: credhelper configure pip"]
    finally:
        shop.credhelper("configure", "pip")
        netrc = shop.home / ".netrc"
        assert wait_for(lambda: netrc.exists() and "machine localhost" in netrc.read_text())


def test_npm_block_missing_or_stale(shop: Workspace) -> None:
    other = shop.root / "other.npmrc"
    other.write_text("registry=https://registry.npmjs.org/\n")
    other.chmod(0o600)
    code, checks = doctor(shop, NPM_CONFIG_USERCONFIG=str(other))
    assert code == 1
    assert "credhelper" in failed(checks, "npm", "block is missing")["fix"]

    key = "//" + shop.em.npm_url.split("://", 1)[1]
    expired = "eyJhbGciOiJub25lIn0.eyJleHAiOjF9.c2lnbmF0dXJl"  # {"exp": 1}: not a real token
    other.write_text(f"# >>> credhelper >>>\n{key}:_authToken={expired}\n# <<< credhelper <<<\n")
    code, checks = doctor(shop, NPM_CONFIG_USERCONFIG=str(other))
    assert code == 1
    failed(checks, "npm", "stale")
    assert expired not in json.dumps(checks)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_idp_unreachable(shop: Workspace) -> None:
    accounts = shop.federated_account()
    accounts.update(shop.federated_account("offline",
                                           authority=f"https://127.0.0.1:{closed_port()}/contoso"))
    shop.write_config(accounts, routes(shop.em) + [
        {"url": f"{shop.em.feed_base}/offline/", "account": "offline", "scopes": [ADO]}],
        npm=[shop.em.npm_url])
    shop.credhelper("reload")
    try:
        code, checks = doctor(shop)
        assert code == 1
        assert "authority" in failed(checks, "idp offline", "cannot reach")["fix"]
        failed(checks, "token offline", "idp_unavailable")
        assert only_failures(checks) == ["idp offline", "token offline"]
    finally:
        healthy_config(shop)
        shop.credhelper("reload")


def test_token_not_obtainable(shop: Workspace) -> None:
    accounts = shop.federated_account()
    accounts["person"] = {"authority": f"{shop.em.idp_base}/{shop.em.tenant}",
                          "client_id": "public-app", "flow": "device_code",
                          "ca_bundle": str(shop.em.ca_file)}
    shop.write_config(accounts, routes(shop.em) + [
        {"url": f"{shop.em.feed_base}/person/", "account": "person", "scopes": [ADO]}],
        npm=[shop.em.npm_url])
    shop.credhelper("reload")
    try:
        code, checks = doctor(shop)
        assert code == 1
        check = failed(checks, "token person", "not_signed_in")
        assert check["fix"] == "run: credhelper login person"
        assert only_failures(checks) == ["token person"]
    finally:
        healthy_config(shop)
        shop.credhelper("reload")


def test_token_material_under_workspace(shop: Workspace) -> None:
    token = shop.client().get(f"{shop.em.feed_base}/git/x.git", for_="test")["token"]
    notes = shop.workspace_root / "app" / "notes.txt"
    notes.parent.mkdir()
    notes.write_text(f"debugging: curl -H 'Authorization: Bearer {token}'\n")
    npmrc = shop.workspace_root / "app" / ".npmrc"
    npmrc.write_text("//example.invalid/:_authToken=abc123\n")
    ignored = shop.workspace_root / "app" / "node_modules" / "pkg" / "notes.txt"
    ignored.parent.mkdir(parents=True)
    ignored.write_text(notes.read_text())
    try:
        proc = shop.credhelper("doctor", check=False, cwd=str(shop.root))
        assert proc.returncode == 1
        assert token not in proc.stdout + proc.stderr
        code, checks = doctor(shop)
        assert failed(checks, "workspace", str(notes))["fix"].startswith(f"delete it (rm {notes})")
        failed(checks, "workspace", str(npmrc))
        assert only_failures(checks) == ["workspace", "workspace"]  # node_modules is skipped
        assert token not in json.dumps(checks)
    finally:
        for path in (notes, npmrc, ignored):
            path.unlink()


def test_clock_skew(shop: Workspace) -> None:
    shop.em.idp.date_skew = -900  # the IdP's clock is 15 minutes behind ours
    try:
        code, checks = doctor(shop)
        assert code == 1
        check = failed(checks, "clock", "ahead of")
        assert "timedatectl" in check["fix"]
    finally:
        shop.em.idp.date_skew = 0.0
