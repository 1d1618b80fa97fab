"""A bad day, one fault at a time: the held token is served, nothing is lost, the cache stays readable.

Identity-provider faults (5xx, 429 with Retry-After, hangs, resets, slow bodies, expired
assertions) times clock jumps of +-1 h run in-process: real sources against the emulator, a
``TokenManager`` on a ``FakeClock``. Crashes (kill -9 at every step of a cache write), a full
disk and two daemons started at once run against real processes.
"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import msal
import pytest

from credhelper import config as config_mod, schedule
from credhelper.auth import make_source
from credhelper.clock import FakeClock
from credhelper.errors import CredhelperError
from credhelper.tokens import TokenManager
from harness import ADO, BIN, Workspace, wait_for

HOUR = 3600.0
STEP = 60.0
FED_APP, SECRET_APP = "matrix-fed", "matrix-secret"
SECRET_ENV = "CREDHELPER_TEST_MATRIX_SECRET"
Slot = Tuple[str, Tuple[str, ...]]
SLOTS: List[Slot] = [("fed", (ADO,)), ("svc", (ADO,))]

# (name, emulator fault kind, its arguments, how many token requests it spoils)
FAULTS = [
    ("5xx", "500", {}, 6),
    ("429 + Retry-After", "429", {"retry_after": 600}, 3),
    ("hang", "timeout", {"seconds": 1}, 2),
    ("reset", "reset", {}, 6),
    ("slow body", "slow", {"seconds": 1}, 2),
    ("expired assertion", None, {}, 0),
]
JUMPS = [0.0, HOUR, -HOUR]


@pytest.fixture
def matrix(em: "object", tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[
        Tuple[TokenManager, FakeClock, Path]]:
    """A TokenManager over a federated source (assertion read from a file) and a client secret."""
    em.register_app(FED_APP, federated=[(em.workspace_issuer, "workspace:demo")])
    em.register_app(SECRET_APP, secret=em.client_secret)
    monkeypatch.setenv(SECRET_ENV, em.client_secret)
    assertion = tmp_path / "assertion"
    assertion.write_text(em.mint_workspace_token(subject="workspace:demo", lifetime=6 * 3600))
    authority = f"{em.idp_base}/{em.tenant}"
    text = (f'[accounts.fed]\nauthority = "{authority}"\nclient_id = "{FED_APP}"\n'
            f'flow = "federated"\nassertion_file = "{assertion}"\nca_bundle = "{em.ca_file}"\n'
            f'[accounts.svc]\nauthority = "{authority}"\nclient_id = "{SECRET_APP}"\n'
            f'flow = "client_secret"\nclient_secret_env = "{SECRET_ENV}"\n'
            f'ca_bundle = "{em.ca_file}"\n')
    (tmp_path / "config.toml").write_text(text)
    cfg = config_mod.parse(text, tmp_path / "config.toml")
    cache = msal.SerializableTokenCache()
    sources = {name: make_source(account, cache, 3.0) for name, account in cfg.accounts.items()}
    clock = FakeClock(start=time.time())
    yield TokenManager(sources, clock, rng=random.Random(11)), clock, assertion
    for source in sources.values():
        source.close()


@pytest.mark.parametrize("jump", JUMPS, ids=["no jump", "+1h", "-1h"])
@pytest.mark.parametrize("name,kind,args,times", FAULTS, ids=[f[0] for f in FAULTS])
def test_a_held_token_is_served_through_the_fault(
        em: "object", matrix: Tuple[TokenManager, FakeClock, Path], name: str,
        kind: Optional[str], args: Dict[str, int], times: int, jump: float) -> None:
    tokens, clock, assertion = matrix
    held = {slot: tokens.get(*slot) for slot in SLOTS}
    first = len(em.idp.requests)
    if kind is not None:
        em.idp.fail(kind, times=times, **args)
    else:  # the workspace's identity token has expired: Entra refuses the exchange
        assertion.write_text(em.mint_workspace_token(subject="workspace:demo", lifetime=-600))
    clock.set(clock.now() + jump)
    refused: List[str] = []
    for step in range(int(3 * HOUR / STEP)):
        now = clock.advance(STEP)
        if kind is None and step == 60:  # an hour in, the workspace gets a fresh identity token
            assertion.write_text(em.mint_workspace_token(subject="workspace:demo",
                                                         lifetime=6 * 3600))
        tokens.run_due(wait=True)
        for slot in SLOTS:
            valid = held[slot].expires_on - now > schedule.SERVE_MARGIN
            try:
                held[slot] = tokens.get(*slot)
            except CredhelperError as exc:
                if valid:  # a token was held and still good: refusing to serve it is the bug
                    refused.append(f"{slot[0]} at +{step * STEP:.0f}s: {exc.code}")
    assert refused == [], refused
    met = [r for r in em.idp.requests[first:] if r["status"] != 200]
    assert met, f"no request met the {name} fault: the test proved nothing"
    em.idp.clear_faults()
    clock.advance(HOUR)
    tokens.run_due(wait=True)
    for slot in SLOTS:  # recovered: every slot fresh again
        assert tokens.get(*slot).expires_on - clock.now() > schedule.FRESH_MARGIN


# -- kill -9 at every step of a cache write ---------------------------------------------------------

KILL_AT = r"""
import os, signal, sys
from pathlib import Path
from credhelper.keystore import KeyFileStore
from credhelper.vault import Vault
state, step, data = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode()
vault = Vault(state / "cache.bin", KeyFileStore(state / "key"))
calls = 0
def counted(name):
    real = getattr(os, name)
    def call(*args, **kw):
        global calls
        calls += 1
        if calls == step:
            os.kill(os.getpid(), signal.SIGKILL)  # this step never happens
        return real(*args, **kw)
    return call
for name in ("open", "write", "fsync", "close", "replace", "rename", "link", "unlink", "fchmod",
             "mkdir"):
    setattr(os, name, counted(name))
vault.save(data)
print("saved", calls)
"""


def _save_killed_at(state: Path, step: int, data: str) -> Optional[int]:
    """Save ``data`` in a child killed at its ``step``-th file operation; the steps, if it finished."""
    proc = subprocess.run([sys.executable, "-c", KILL_AT, str(state), str(step), data],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode == -signal.SIGKILL:
        return None
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.split()[1])


@pytest.mark.parametrize("first", [True, False], ids=["first save", "replacing a save"])
def test_kill_9_at_every_step_of_a_cache_write_loses_nothing(tmp_path: Path, first: bool) -> None:
    from credhelper.keystore import KeyFileStore
    from credhelper.vault import Vault

    def vault(state: Path) -> Vault:
        return Vault(state / "cache.bin", KeyFileStore(state / "key"))

    step, finished = 1, None
    while finished is None:
        state = tmp_path / f"step-{step}"
        state.mkdir(mode=0o700)
        if not first:
            vault(state).save(b"OLD refresh token")
        finished = _save_killed_at(state, step, "NEW refresh token")
        after = vault(state)
        # the old cache or the new one, readable, never a problem; never half of each
        expected = {b"NEW refresh token"} | ({None} if first else {b"OLD refresh token"})
        assert after.load() in expected, step
        assert after.problem is None, (step, after.problem)
        after.save(b"later")  # and the next save works, sweeping what the dead writer left
        assert vault(state).load() == b"later"
        assert sorted(p.name for p in state.iterdir()) == ["cache.bin", "key"], step
        step += 1
    assert finished is not None and step > 4, "the save had too few steps to prove anything"


# -- two daemons started at once -----------------------------------------------------------------

def test_two_daemons_started_at_once_leave_one_serving(ws: Workspace) -> None:
    ws.default_config()
    env = ws.daemon_env()
    logs = [open(ws.root / f"daemon-{i}.stderr", "wb") for i in range(2)]
    procs = [subprocess.Popen([str(BIN / "credhelper"), "daemon"], env=env, stdout=log,
                              stderr=log) for log in logs]
    try:
        assert wait_for(lambda: ws.client().ping(), 30)
        # one of them gives up with one line; the other serves
        assert wait_for(lambda: sum(p.poll() is not None for p in procs) == 1, 30), [
            p.poll() for p in procs]
        loser = next(p for p in procs if p.poll() is not None)
        winner = next(p for p in procs if p.poll() is None)
        text = (ws.root / f"daemon-{procs.index(loser)}.stderr").read_text()
        assert loser.returncode == 2 and "already" in text and "Traceback" not in text, text
        assert ws.client().call("ping")["pid"] == winner.pid
        assert ws.client().get(f"{ws.em.feed_base}/x", "test")["token"]
        assert ws.client().call("status")["cache_problem"] is None
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(15)
        for log in logs:
            log.close()
