"""The daemon under a fuzzer and 500 concurrent clients: alive, every request answered or closed.

Short forms run in ``make test``; ``make stress`` runs the long forms (CREDHELPER_STRESS=long:
100,000 fuzz inputs, 500 clients for 60 s) and prints the figures the README reports.
"""

import json
import os

import pytest

import stress
from credhelper import paths
from harness import Workspace

LONG = os.environ.get("CREDHELPER_STRESS") == "long"
FUZZ_INPUTS = 100_000 if LONG else 3_000
LOAD_SECONDS = 60.0 if LONG else 3.0
CLIENTS = 500
SEED = int(os.environ.get("CREDHELPER_STRESS_SEED", "20261201"))


@pytest.fixture(scope="module")
def target(module_ws: Workspace) -> Workspace:
    ws = module_ws
    ws.default_config()
    ws.start_daemon()
    ws.client().get(f"{ws.em.feed_base}/warm", "test")
    return ws


def _report(name: str, figures: dict) -> None:
    print(f"\nSTRESS {name}: {json.dumps(figures)}")


def test_fuzzer_leaves_the_daemon_serving(target: Workspace, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture) -> None:
    ws = target
    monkeypatch.setenv("CREDHELPER_SOCKET", str(ws.socket))  # for the keyring backend
    monkeypatch.setenv("CREDHELPER_NO_AUTOSTART", "1")
    git_socket = paths.git_cache_socket(ws.socket)
    assert git_socket.exists()
    result = stress.fuzz(str(ws.socket), FUZZ_INPUTS, SEED, ws.em.feed_base,
                         git_socket=str(git_socket))
    problems = result.pop("problems")
    with capsys.disabled():
        _report("fuzz", result)
    assert problems == [], problems[:10]
    assert ws.daemon.poll() is None and ws.client().ping()
    log = (ws.state_dir / "daemon.log").read_text(errors="replace")
    assert "Traceback" not in log and "internal error" not in log


def test_five_hundred_concurrent_clients_get_without_error(target: Workspace,
                                                           capsys: pytest.CaptureFixture) -> None:
    ws = target
    result = stress.load(str(ws.socket), f"{ws.em.feed_base}/x", CLIENTS, LOAD_SECONDS)
    with capsys.disabled():
        _report("load", result)
    assert result["errors"] == 0, result["first_errors"]
    assert result["idle_clients"] == 0 and result["requests"] >= CLIENTS
    assert ws.daemon.poll() is None and ws.client().ping()
