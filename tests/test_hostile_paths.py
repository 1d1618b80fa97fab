"""Token material never lands in a checkout or under /workspace, whoever started the daemon.

npm exports ``npm_config_userconfig`` to lifecycle scripts; a script that runs git autostarts the
daemon with that environment. The daemon takes its paths from its own user's settings and
refuses any sink, state or socket path inside a git work tree or under ``/workspace``.
"""

import json
import os
import signal
from pathlib import Path

from credhelper import paths
from harness import BIN, Workspace, wait_for


def _checkout(ws: Workspace) -> Path:
    repo = ws.root / "checkout"
    repo.mkdir()
    ws.git("init", "-q", str(repo))
    return repo


def test_a_daemon_autostarted_by_an_npm_script_keeps_the_users_npmrc(ws: Workspace) -> None:
    ws.default_config(npm=True)
    repo = _checkout(ws)
    (repo / "package.json").write_text(json.dumps({
        "name": "victim", "version": "1.0.0",
        # what a build script does: git asks our helper, which autostarts the daemon
        "scripts": {"fetch": f"{BIN}/credhelper token {ws.em.feed_base}/x > /dev/null"}}))
    env = dict(ws.env)
    del env["CREDHELPER_NO_AUTOSTART"]
    del env["NPM_CONFIG_USERCONFIG"]  # the person relies on npm's default, ~/.npmrc
    project_rc = repo / ".npmrc"
    project_rc.write_text("")
    try:
        ws.run(["npm", "--userconfig", str(project_rc), "run", "fetch"], cwd=repo, env=env)
        # the daemon fills the npm block of the user's own npmrc, in HOME
        assert wait_for(lambda: ws.npmrc.exists() and "_authToken" in ws.npmrc.read_text())
        assert "_authToken" not in project_rc.read_text()
    finally:
        pid = ws.client().call("ping")["pid"]
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not ws.socket.exists())
    assert "_authToken" not in project_rc.read_text()


def test_state_dir_or_socket_inside_a_checkout_is_refused(ws: Workspace) -> None:
    ws.default_config()
    repo = _checkout(ws)
    for name, value in (("CREDHELPER_STATE_DIR", repo / "state"),
                        ("CREDHELPER_SOCKET", repo / "deep" / "run" / "d.sock")):
        env = dict(ws.env, **{name: str(value)})
        proc = ws.credhelper("daemon", check=False, timeout=60, env=env)
        assert proc.returncode == 2 and "inside the git work tree" in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (repo / "state" / "cache.bin").exists()


def test_an_npmrc_inside_a_checkout_gets_no_token(ws: Workspace) -> None:
    ws.default_config(npm=True)
    repo = _checkout(ws)
    inside = repo / ".npmrc"
    ws.env["NPM_CONFIG_USERCONFIG"] = str(inside)
    ws.start_daemon()
    ws.client().get(f"{ws.em.feed_base}/x", "test")
    assert wait_for(lambda: "refusing to keep the npm config with tokens" in ws.logs())
    assert not inside.exists()


def test_workspace_and_checkouts_are_named_in_the_reason(tmp_path: Path) -> None:
    assert "under /workspace" in paths.checkout_reason(Path("/workspace/x/.npmrc"), "npmrc")
    assert "under /workspace" in paths.checkout_reason(Path("/workspace"), "state directory")
    assert paths.checkout_reason(Path("/workspaces/x"), "socket") is None
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    reason = paths.checkout_reason(tmp_path / "repo" / "a" / "b" / "state", "state directory")
    assert f"git work tree {tmp_path / 'repo'}" in reason
    assert paths.checkout_reason(tmp_path / "elsewhere" / "state", "state directory") is None
