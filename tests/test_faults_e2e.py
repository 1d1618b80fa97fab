"""The identity provider misbehaves; callers get the documented error, the daemon serves on.

One real daemon serves the module. Every fault case uses a route of its own (its own scope, so
its own cold slot), so each case starts with a token request that meets the fault; the
``fed`` and ``svc`` routes hold tokens throughout and must keep being served.
"""

import json
import subprocess
import threading
import time
from typing import Any, Dict, List, Tuple

import pytest

from credhelper.errors import CredhelperError
from harness import BIN, Workspace

SECRET_ENV = "CREDHELPER_TEST_SVC_SECRET"
FEED_SCOPE = "api://credhelper-feed/.default"
# case: (fault kind or None, account, wire code, what the message names)
CASES: Dict[str, Tuple[str, str, str, str]] = {
    "server-error": ("500", "fed", "idp_unavailable", "HTTP 500"),
    "throttled": ("429", "fed", "throttled", "HTTP 429"),
    "timeout": ("timeout", "fed", "idp_unavailable", "did not answer within 3s"),
    "invalid-client": ("invalid_client", "svc", "auth_failed", "AADSTS7000215 invalid_client"),
    "expired-assertion": ("", "expired", "auth_failed", "AADSTS700024 invalid_client"),
}


def scope_of(case: str) -> str:
    return f"api://fault-{case}/.default"


@pytest.fixture(scope="module")
def fws(module_ws: Workspace) -> Workspace:
    """Accounts fed (federated), svc (secret), expired (a stale assertion); one daemon."""
    ws, emulator = module_ws, module_ws.em
    emulator.idp.clear_faults()
    ws.env[SECRET_ENV] = emulator.client_secret
    stale = ws.root / "stale-assertion.jwt"
    stale.write_text(emulator.mint_workspace_token(lifetime=-1000) + "\n")
    authority = f"{emulator.idp_base}/{emulator.tenant}"
    accounts = ws.federated_account("fed")
    accounts["svc"] = {"authority": authority, "client_id": "secret-app", "flow": "client_secret",
                       "client_secret_env": SECRET_ENV, "ca_bundle": str(emulator.ca_file)}
    accounts["expired"] = {"authority": authority, "client_id": "fed-app", "flow": "federated",
                           "assertion_file": str(stale), "ca_bundle": str(emulator.ca_file)}
    feed = emulator.feed_base
    routes = [{"url": f"{feed}/fed/", "account": "fed", "preset": "azure-devops"},
              {"url": f"{feed}/svc/", "account": "svc", "scopes": [FEED_SCOPE]},
              {"url": f"{feed}/concurrency/", "account": "fed",
               "scopes": ["api://concurrency/.default"]}]
    routes += [{"url": f"{feed}/{case}/", "account": account, "scopes": [scope_of(case)]}
               for case, (_, account, _, _) in CASES.items()]
    ws.write_config(accounts, routes)
    ws.start_daemon()
    return ws


def _scope_requests(em: "object", scope: str) -> int:
    return sum(1 for r in list(em.idp.requests) if r["scope"].split() == [scope])


def _helper(ws: Workspace, path: str) -> subprocess.CompletedProcess:
    port = ws.em.feed_base.rsplit(":", 1)[1]
    return subprocess.run([str(BIN / "git-credential-entra"), "get"], env=ws.env,
                          input=f"protocol=https\nhost=localhost:{port}\npath={path}\n\n",
                          capture_output=True, text=True, timeout=60)


def test_one_hundred_concurrent_gets_on_a_cold_slot_cause_one_token_request(
        fws: Workspace) -> None:
    em, url = fws.em, f"{fws.em.feed_base}/concurrency/x"
    before = _scope_requests(em, "api://concurrency/.default")
    start = threading.Barrier(100)
    tokens: List[str] = []
    errors: List[str] = []
    lock = threading.Lock()

    def get() -> None:
        client = fws.client()  # each thread its own client, so its own connection
        start.wait(30)
        try:
            token = client.get(url, "test")["token"]
        except CredhelperError as exc:
            with lock:
                errors.append(exc.code)
            return
        with lock:
            tokens.append(token)

    threads = [threading.Thread(target=get) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and len(tokens) == 100
    assert len(set(tokens)) == 1
    assert _scope_requests(em, "api://concurrency/.default") - before == 1


def _slot(ws: Workspace, scope: str) -> Dict[str, Any]:
    status = ws.client().call("status")
    return next((s for s in status["slots"] if s["scopes"] == [scope]), {})


@pytest.mark.parametrize("case", list(CASES))
def test_idp_fault_reaches_the_caller_as_its_code(fws: Workspace, em: "object", case: str) -> None:
    kind, account, code, named = CASES[case]
    feed, scope = em.feed_base, scope_of(case)
    # the other identities hold tokens before the fault, and must go on being served
    served = {path: fws.client().get(f"{feed}/{path}/x", "test")["token"] for path in ("fed", "svc")}
    if kind:
        em.idp.fail(kind, times=2, retry_after=120 if kind == "429" else None,
                    seconds=3.5 if kind == "timeout" else None)
    before = _scope_requests(em, scope)

    outcome: Dict[str, Any] = {}

    def attempt() -> None:
        try:
            fws.client().get(f"{feed}/{case}/x", "test")
            outcome["token"] = True
        except CredhelperError as exc:
            outcome["error"] = exc

    failing = threading.Thread(target=attempt)
    failing.start()
    if kind == "timeout":  # while this slot waits on the IdP, the others answer from memory
        while _slot(fws, scope).get("state") != "refreshing" and failing.is_alive():
            time.sleep(0.01)
        assert {p: fws.client().get(f"{feed}/{p}/x", "test")["token"] for p in served} == served
        assert failing.is_alive(), "the slow answer came before the other slots were served"
    failing.join(30)
    error = outcome.get("error")
    assert isinstance(error, CredhelperError) and error.code == code, outcome
    assert named in error.message
    if kind == "429":
        assert error.retry_after is not None and 100 < error.retry_after <= 120

    proc = _helper(fws, f"{case}/x.git")
    assert proc.returncode == 0 and proc.stdout == "quit=1\n"  # git must not prompt or go on
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("credhelper: ") and named in lines[0], lines

    status = json.loads(fws.credhelper("status", "--json").stdout)
    slot = next(s for s in status["slots"] if s["scopes"] == [scope])
    assert slot["account"] == account and slot["state"] == "empty"
    assert slot["failures"] >= 1 and named in slot["reason"]
    # a cold slot has nothing to refresh in the background: it asks again on the next get,
    # except a throttled one, which answers throttled until Retry-After has passed
    assert slot["next_refresh"] is None
    expected = 1 if kind == "429" else 2
    deadline = time.monotonic() + 10  # the emulator logs a held request when it lets go of it
    while _scope_requests(em, scope) - before < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _scope_requests(em, scope) - before == expected
    assert {p: fws.client().get(f"{feed}/{p}/x", "test")["token"] for p in served} == served
