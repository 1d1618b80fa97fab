"""What a newcomer sees on day one: status and doctor with one identity provider down, doctor and
the daemon log before the first sign-in, messages that name the next step, `| head`.

Each test runs the real CLI against a real daemon and the emulator.
"""

import json
import socket
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest

from harness import BIN, Workspace, wait_for
from signin import device_account, sign_in


def closed_port() -> int:
    """A local port nothing listens on (the OS picks it; we close it again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def doctor_checks(ws: Workspace) -> List[Dict[str, Any]]:
    """`credhelper doctor --json`, run outside any checkout."""
    proc = ws.credhelper("doctor", "--json", check=False, cwd=str(ws.root))
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)["checks"]


def named(checks: List[Dict[str, Any]], name: str) -> Dict[str, Any]:
    """The one check called ``name``."""
    [check] = [c for c in checks if c["name"] == name]
    return check


@pytest.fixture
def one_idp_down(ws: Workspace) -> Workspace:
    """'workspace' (federated, fine) serves git; 'away' (a person's, its IdP down) serves pypi."""
    away = dict(device_account(ws), authority=f"https://127.0.0.1:{closed_port()}/contoso")
    ws.write_config(
        dict(ws.federated_account(), away=away),
        [{"url": f"{ws.em.feed_base}/git/", "account": "workspace", "preset": "azure-devops"},
         {"url": f"{ws.em.feed_base}/pypi/", "account": "away", "preset": "azure-devops"}])
    ws.start_daemon()
    ws.credhelper("token", ws.em.git_url())
    refused = ws.credhelper("token", ws.em.pypi_url, check=False)
    assert refused.returncode != 0 and "cannot reach" in refused.stderr, refused.stderr
    return ws


def test_status_with_one_idp_down_shows_everything_it_knows(one_idp_down: Workspace) -> None:
    proc = one_idp_down.credhelper("status", check=False)
    assert proc.returncode == 0, proc.stderr
    everything = proc.stdout.splitlines()
    assert everything[0].startswith("daemon   pid ")
    lines = everything[everything.index("accounts"):everything.index("tokens")]
    [workspace] = [line for line in lines if line.startswith("  workspace ")]
    assert "federated" in workspace
    at = next(i for i, line in enumerate(lines) if line.startswith("  away "))
    assert "not signed in: run credhelper login away" in lines[at]
    assert lines[at + 1].split()[0] == "unreachable:" and "cannot reach" in lines[at + 1]
    reply = json.loads(one_idp_down.credhelper("status", "--json").stdout)
    flags = {a["name"]: a["unreachable"] for a in reply["accounts"]}
    assert flags == {"workspace": False, "away": True}


def test_doctor_puts_an_unreachable_idp_on_its_account_not_on_the_daemon(
        one_idp_down: Workspace) -> None:
    checks = doctor_checks(one_idp_down)
    assert named(checks, "daemon")["status"] == "ok"
    assert named(checks, "idp workspace")["status"] == "ok"
    away = named(checks, "idp away")
    assert away["status"] == "fail" and "[accounts.away]" in away["fix"]
    assert "credhelper start" not in json.dumps(checks)


def test_before_the_first_sign_in(ws: Workspace) -> None:
    """Doctor sends the person to `credhelper login`, and the daemon waits quietly meanwhile."""
    ws.write_config({"work": device_account(ws)},
                    [{"url": f"{ws.em.feed_base}/", "account": "work", "preset": "azure-devops"}],
                    npm=[ws.em.npm_url])
    ws.credhelper("configure", "npm")
    ws.start_daemon()
    # the npm registry keeps the slot pinned: the refresher has tried it and parked it
    assert wait_for(lambda: "waiting for sign-in" in ws.logs())
    npm = named(doctor_checks(ws), "npm")
    assert npm["status"] == "fail" and npm["fix"].startswith("run: credhelper login work")
    [slot] = json.loads(ws.credhelper("status", "--json").stdout)["slots"]
    assert (slot["failures"], slot["next_refresh"], slot["error"]) == (0, None, "not_signed_in")
    log = (ws.state_dir / "daemon.log").read_text()
    assert "refresh failed" not in log and log.count("waiting for sign-in") == 1, log
    sign_in(ws, "work")
    # the block fills at once, from a thread: the file may not be there at the first look
    assert wait_for(lambda: ws.npmrc.exists() and "_authToken=" in ws.npmrc.read_text())
    assert named(doctor_checks(ws), "npm")["status"] == "ok"


def test_autostart_log_keeps_what_logging_does_not(ws: Workspace) -> None:
    ws.default_config()
    env = {k: v for k, v in ws.env.items() if k != "CREDHELPER_NO_AUTOSTART"}
    ws.run([str(BIN / "credhelper"), "token", ws.em.git_url()], env=env)  # starts the daemon
    try:
        daemon_log = (ws.state_dir / "daemon.log").read_text()
        autostart_log = ws.state_dir / "autostart.log"
        assert " ready on " in daemon_log
        assert " ready on " not in (autostart_log.read_text() if autostart_log.exists() else "")
    finally:
        ws.run([str(BIN / "credhelper"), "stop"], env=env)


def test_messages_name_the_next_step(ws: Workspace) -> None:
    ws.write_config({"work": device_account(ws), "other": device_account(ws, tenant="fabrikam")},
                    [{"url": f"{ws.em.feed_base}/git/", "account": "work", "preset": "azure-devops"}])
    ws.start_daemon()
    nobody = ws.credhelper("login", "x", check=False)
    assert nobody.returncode == 2
    assert "no account named 'x'" in nobody.stderr and "work, other" in nobody.stderr
    unrouted = ws.credhelper("token", "https://elsewhere.example/feed/", check=False)
    assert "add a [[routes]] entry" in unrouted.stderr
    assert str(ws.config_path) in unrouted.stderr
    sign_in(ws, "work")
    assert ws.credhelper("logout", "work").stdout.strip() == "credhelper: signed out of work"
    again = ws.credhelper("logout", "work").stdout.strip()
    assert again == "credhelper: nobody was signed in to work; nothing to do"


@pytest.mark.parametrize("command", [["doctor"], ["status"]])
def test_a_reader_that_goes_away_ends_us_quietly(ws: Workspace, command: List[str]) -> None:
    """`credhelper doctor | head -4`: the reader leaves early; no traceback, no internal error."""
    ws.default_config()
    ws.start_daemon()
    proc = subprocess.Popen([str(BIN / "credhelper"), *command], env=ws.env, cwd=str(ws.root),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command writes a byte: its first write meets EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 141 and err == ""


def test_init_alone_sets_up_any_identity_provider(ws: Workspace) -> None:
    """The emulator is not Entra: init's flags say so, and no hand edit of the file is needed."""
    em = ws.em
    out = ws.credhelper("init", "--device-code", "--client-id", "public-app",
                        "--authority", f"{em.idp_base}/{em.tenant}", "--ca-bundle", str(em.ca_file),
                        "--url", f"{em.feed_base}/git/").stdout
    assert "credhelper configure all" in out.splitlines()[-1]
    ws.start_daemon()
    ws.credhelper("configure", "git")
    sign_in(ws, "work")
    ws.git("clone", "--quiet", em.git_url(), str(ws.root / "checkout"))
    assert (ws.root / "checkout" / ".git").is_dir()
