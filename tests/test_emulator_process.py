"""The emulator as a process: `serve` writes emulator.json, `gp idp token` federates, SIGTERM stops."""

import json
import os
import signal
import subprocess
import sys
import threading

import msal
import pytest


@pytest.fixture
def served(tmp_path):
    env = dict(os.environ)
    # a relative --dir, as the README's by-hand steps give it
    proc = subprocess.Popen([sys.executable, "-m", "credhelper.emulator", "serve", "--dir", "emu"],
                            env=env, stderr=subprocess.PIPE, cwd=tmp_path)
    tmp_path = tmp_path / "emu"
    state = tmp_path / "emulator.json"
    waiter = threading.Event()
    while not state.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        waiter.wait(0.05)
    yield tmp_path, json.loads(state.read_text()), proc
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def test_serve_then_gp_token_federates(served, monkeypatch):
    workdir, info, _ = served
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    assert oct((workdir / "client_secret").stat().st_mode & 0o777) == "0o600"
    assert oct((workdir / "emulator.json").stat().st_mode & 0o777) == "0o600"
    assertion = subprocess.run(
        [sys.executable, "-m", "credhelper.emulator", "gp", "--dir", workdir.name, "idp", "token",
         "--audience", "api://AzureADTokenExchange"],
        stdout=subprocess.PIPE, check=True, timeout=30, cwd=workdir.parent).stdout.decode().strip()
    app = msal.ConfidentialClientApplication(
        info["apps"]["federated"], client_credential={"client_assertion": lambda: assertion},
        authority=info["authority"], instance_discovery=False, verify=info["ca_file"])
    result = app.acquire_token_for_client(["api://credhelper-feed/.default"])
    assert "access_token" in result, result.get("error_description")
    secret = (workdir / "client_secret").read_text()
    app = msal.ConfidentialClientApplication(
        info["apps"]["client_secret"], client_credential=secret, authority=info["authority"],
        instance_discovery=False, verify=info["ca_file"])
    assert "access_token" in app.acquire_token_for_client(["api://credhelper-feed/.default"])


def test_sigterm_stops_and_removes_state(served):
    workdir, _, proc = served
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert not (workdir / "emulator.json").exists()
