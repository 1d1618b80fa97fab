"""Eight simulated hours of refresh with real sources against the real emulator, in-process.

``TokenManager`` runs on a ``FakeClock``; the sources are the product's own (MSAL, the fake ``gp``
as assertion command, a client secret from the environment) talking HTTPS to the emulator. The
emulator stamps real-time ``exp`` claims, but the sources time tokens on our clock
(``expires_on = now + expires_in``), so eight hours pass in a few seconds and a few dozen requests.
"""

import random
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import msal
import pytest

from credhelper import config as config_mod, schedule
from credhelper.auth import make_source
from credhelper.clock import FakeClock
from credhelper.tokens import TokenManager
from harness import ADO, FEDERATION_AUDIENCE

FEED = "api://credhelper-feed/.default"
HOUR = 3600.0
STEP = 30.0
SIMULATED = 8 * HOUR
OUTAGE = 30 * 60.0
FED_APP, SECRET_APP = "refresh-fed", "refresh-secret"
SECRET_ENV = "CREDHELPER_TEST_REFRESH_SECRET"

Slot = Tuple[str, Tuple[str, ...]]
SLOTS: List[Slot] = [("fed", (ADO,)), ("svc", (ADO,)), ("svc", (FEED,))]
CLIENT = {"fed": FED_APP, "svc": SECRET_APP}


@pytest.fixture
def manager(em: "object", tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[
        Tuple[TokenManager, FakeClock]]:
    """A TokenManager over a federated and a client-secret source, on a fake clock."""
    em.register_app(FED_APP, federated=[(em.workspace_issuer, "workspace:demo")])
    em.register_app(SECRET_APP, secret=em.client_secret)
    monkeypatch.setenv(SECRET_ENV, em.client_secret)
    monkeypatch.setattr(em.idp, "lifetime", (3600, 5400))
    gp = [sys.executable, "-m", "credhelper.emulator", "gp", "--dir", str(em.workdir),
          "idp", "token", "--audience", FEDERATION_AUDIENCE]
    authority = f"{em.idp_base}/{em.tenant}"
    text = (f'[accounts.fed]\nauthority = "{authority}"\nclient_id = "{FED_APP}"\n'
            f'flow = "federated"\nassertion_command = {_toml_list(gp)}\n'
            f'ca_bundle = "{em.ca_file}"\n'
            f'[accounts.svc]\nauthority = "{authority}"\nclient_id = "{SECRET_APP}"\n'
            f'flow = "client_secret"\nclient_secret_env = "{SECRET_ENV}"\n'
            f'ca_bundle = "{em.ca_file}"\n')
    cfg = config_mod.parse(text, tmp_path / "config.toml")
    cache = msal.SerializableTokenCache()
    sources = {name: make_source(account, cache, 3.0) for name, account in cfg.accounts.items()}
    clock = FakeClock(start=time.time())
    yield TokenManager(sources, clock, rng=random.Random(20240601)), clock
    for source in sources.values():
        source.close()


def _toml_list(items: List[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def _requests(em: "object", slot: Slot, since: int = 0) -> List[dict]:
    account, scopes = slot
    return [r for r in em.idp.requests[since:]
            if r["client_id"] == CLIENT[account] and r["scope"].split() == list(scopes)]


def test_eight_hours_of_refresh_with_an_outage_in_the_middle(
        em: "object", manager: Tuple[TokenManager, FakeClock]) -> None:
    tokens, clock = manager
    first = len(em.idp.requests)
    start = clock.now()
    for slot in SLOTS:  # cold: one acquisition each, on the caller's thread
        assert tokens.get(*slot).expires_on - start >= 3600 - 5
    # The outage begins just before the next refresh due after four hours, so at least one slot
    # meets it with the least cover its schedule leaves (the worst alignment there is).
    outage_start = outage_end = None
    outage_on = False
    degraded: List[dict] = []
    remaining: Dict[Slot, List[Tuple[float, float]]] = {slot: [] for slot in SLOTS}
    while clock.now() - start < SIMULATED:
        now = clock.advance(STEP)
        if outage_start is None and now - start >= 4 * HOUR:
            due = tokens.next_due()
            if due is not None and due - now <= STEP:
                outage_start, outage_end, outage_on = now, now + OUTAGE, True
                em.idp.fail("outage")
        if outage_on and outage_end is not None and now >= outage_end:
            em.idp.clear_faults()
            outage_on = False
        tokens.run_due(wait=True)
        if outage_on:
            degraded += [s for s in tokens.status() if s["state"] == "degraded"
                         and s["next_refresh"] is not None and s["next_refresh"] > now]
        before = len(em.idp.requests)
        for slot in SLOTS:
            token = tokens.get(*slot)  # raises if any get failed
            remaining[slot].append((now, token.expires_on - now))
        assert len(em.idp.requests) == before, "a get went to the identity provider"
    assert outage_start is not None and outage_end is not None

    faulted = [r for slot in SLOTS for r in _requests(em, slot, first) if r["fault"] == "outage"]
    assert faulted, "no refresh met the outage: the test proved nothing about it"
    # what `credhelper status` shows meanwhile: degraded, the backoff's next try, the reason
    assert degraded and all(s["failures"] >= 1 and "HTTP 503" in s["reason"] for s in degraded)
    for slot in SLOTS:
        served = remaining[slot]
        # normal operation: always more than five minutes left on what a get returns
        outside = [left for when, left in served if not outage_start <= when <= outage_end + 600]
        assert min(outside) > schedule.FRESH_MARGIN, slot
        # during the outage and its recovery the held token still covers every get
        assert min(left for _, left in served) > schedule.SERVE_MARGIN, slot
        ok = [r for r in _requests(em, slot, first) if r["status"] == 200]
        # one request per half lifetime: refresh 23-45 minutes after issue for 60-90 minute tokens
        shortest = 3600 / 2 - schedule.JITTER_LEAD - schedule.JITTER_SPAN
        longest = 5400 / 2 - schedule.JITTER_LEAD
        assert SIMULATED // longest <= len(ok) - 1 <= SIMULATED // shortest + 2, (slot, len(ok))
        failed = [r for r in _requests(em, slot, first) if r["status"] != 200]
        assert all(r["fault"] == "outage" for r in failed), slot
        # backoff, not a retry storm: retrying at every 30 s step would be 60 requests
        assert len(failed) <= 30, (slot, len(failed))
    status = {(s["account"], tuple(s["scopes"])): s for s in tokens.status()}
    assert all(status[slot]["state"] == "fresh" and status[slot]["failures"] == 0
               for slot in SLOTS)
