"""TokenManager: memory-served hot path, single flight, scheduled refresh, degradation, backoff.

Hours of refresh run in milliseconds on a FakeClock; a fake Source counts every acquisition.
"""

import json
import random
import threading
import time
import uuid
from typing import List, Optional, Tuple

import pytest

from credhelper import schedule
from credhelper.auth.base import Token
from credhelper.clock import FakeClock
from credhelper.errors import AuthFailed, ConfigError, IdpUnavailable, NotSignedIn, Throttled
from credhelper.refresher import Refresher
from credhelper.tokens import TokenManager

DEVOPS = ("499b84ac-1321-427f-aa17-267ca6975798/.default",)
FEED = ("api://credhelper-feed/.default",)
HOUR = 3600.0


class FakeSource:
    """Issues tokens living 3600-5400 s (refresh_in = half, as Entra does); fails on demand."""

    def __init__(self, account: object = "work", seed: int = 0) -> None:
        self.account = account
        self.rng = random.Random(seed)
        self.fail: Optional[Exception] = None
        self.next_text: Optional[str] = None
        self.gate: Optional[threading.Event] = None
        self.entered = threading.Event()
        self.calls: List[Tuple[float, Tuple[str, ...]]] = []
        self.issued: List[Tuple[float, Tuple[str, ...], int, Token]] = []
        self.lock = threading.Lock()

    def acquire(self, scopes: Tuple[str, ...], now: float) -> Token:
        with self.lock:
            self.calls.append((now, scopes))
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(30), "test gate never opened"
        if self.fail is not None:
            err = self.fail
            raise type(err)(str(err), retry_after=getattr(err, "retry_after", None))
        lifetime = self.rng.randint(3600, 5400)
        text = self.next_text or f"tok-{uuid.uuid4().hex}"
        token = Token(text, now + lifetime, now + lifetime // 2)
        with self.lock:
            self.issued.append((now, scopes, lifetime, token))
        return token

    def count(self, scopes: Optional[Tuple[str, ...]] = None) -> int:
        return sum(1 for _, s in self.calls if scopes is None or s == scopes)


class ConstRandom(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def drive(clock: FakeClock, manager: TokenManager, until: float) -> None:
    """Run every refresh due up to ``until`` at its exact due time, as the Refresher would."""
    while True:
        due = manager.run_due()
        if due is None or due > until:
            break
        clock.set(due)
    clock.set(until)


def state_of(manager: TokenManager, account: str, scopes: Tuple[str, ...]) -> dict:
    return next(s for s in manager.status() if s["account"] == account and tuple(s["scopes"]) == scopes)


SLOTS = [("work", DEVOPS), ("work", FEED), ("bot", DEVOPS)]


def three_slots(rng: Optional[random.Random] = None):
    clock = FakeClock()
    sources = {"work": FakeSource("work", 1), "bot": FakeSource("bot", 2)}
    manager = TokenManager(sources, clock, rng=rng or random.Random(5))
    for account, scopes in SLOTS:
        manager.get(account, scopes)
    return clock, sources, manager


def test_eight_hours_of_gets_come_from_memory_and_refreshes_follow_half_life():
    clock, sources, manager = three_slots()
    start = clock.now()
    while clock.now() < start + 8 * HOUR:
        drive(clock, manager, clock.now() + 30)
        for account, scopes in SLOTS:
            before = sources[account].count()
            token = manager.get(account, scopes)
            assert sources[account].count() == before, "get went to the source"
            assert token.expires_on - clock.now() > 300
    for account, scopes in SLOTS:
        issued = [(at, life) for at, s, life, _ in sources[account].issued if s == scopes]
        # a slot's first refresh is spread over its whole first period (schedule: first=True);
        # each later one lands 2-7 minutes before the previous token's half-life, never elsewhere
        for index, ((at, life), (next_at, _)) in enumerate(zip(issued, issued[1:])):
            low = 60 - 1 if index == 0 else life // 2 - 420 - 1
            assert low <= next_at - at <= life // 2 - 120
        assert 1 + int(8 * HOUR // 2580) <= len(issued) <= 2 + int(8 * HOUR // 1380)
        assert state_of(manager, account, scopes)["state"] == "fresh"


def test_thirty_minute_outage_degrades_without_failing_a_get():
    clock, sources, manager = three_slots()
    drive(clock, manager, clock.now() + 4 * HOUR)
    # worst case: the outage begins just as the first slot's refresh falls due
    outage_start = min(s["next_refresh"] for s in manager.status()) - 1
    drive(clock, manager, outage_start)
    for source in sources.values():
        source.fail = IdpUnavailable("token endpoint answered 503")
    seen_degraded = set()
    while clock.now() < outage_start + 1800:
        drive(clock, manager, min(clock.now() + 30, outage_start + 1800))
        for account, scopes in SLOTS:
            token = manager.get(account, scopes)  # must not raise
            assert schedule.usable(token, clock.now())
            state = state_of(manager, account, scopes)
            if state["state"] == "degraded":
                assert state["reason"] == "token endpoint answered 503" and state["failures"] >= 1
                seen_degraded.add((account, scopes))
    assert seen_degraded
    for source in sources.values():
        source.fail = None
    drive(clock, manager, clock.now() + 600)
    for account, scopes in SLOTS:
        assert manager.get(account, scopes).expires_on - clock.now() > 1800
        state = state_of(manager, account, scopes)
        assert (state["state"], state["failures"], state["reason"]) == ("fresh", 0, None)


def test_hundred_threads_on_a_cold_slot_share_one_acquisition():
    source = FakeSource()
    manager = TokenManager({"work": source}, FakeClock())
    arrived = threading.Semaphore(0)
    source.gate = threading.Event()
    results: List[object] = []

    def call() -> None:
        arrived.release()
        results.append(manager.get("work", DEVOPS))

    threads = [threading.Thread(target=call) for _ in range(100)]
    for thread in threads:
        thread.start()
    for _ in range(100):
        arrived.acquire()
    assert source.entered.wait(10)
    time.sleep(0.05)  # lets the last threads reach the flight; correctness does not depend on it
    source.gate.set()
    for thread in threads:
        thread.join(10)
    assert source.count() == 1
    assert len(results) == 100 and len({id(r) for r in results}) == 1


def test_a_failed_cold_slot_fails_every_waiter_and_other_slots_keep_serving():
    work, bot = FakeSource("work"), FakeSource("bot")
    manager = TokenManager({"work": work, "bot": bot}, FakeClock())
    work.fail = AuthFailed("AADSTS700016: application not found")
    work.gate = threading.Event()
    errors: List[BaseException] = []

    def call() -> None:
        try:
            manager.get("work", DEVOPS)
        except BaseException as exc:  # noqa: B902 - collected and checked below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for thread in threads:
        thread.start()
    assert work.entered.wait(10)
    # while work's acquisition hangs, bot is acquired and served
    assert manager.get("bot", DEVOPS).access_token.startswith("tok-")
    assert state_of(manager, "work", DEVOPS)["state"] == "refreshing"
    work.gate.set()
    for thread in threads:
        thread.join(10)
    assert work.count() == 1 and len(errors) == 20
    assert all(type(e) is AuthFailed and "AADSTS700016" in str(e) for e in errors)
    assert len({id(e) for e in errors}) == 20  # each waiter raises its own instance
    state = state_of(manager, "work", DEVOPS)
    assert state["state"] == "empty" and state["next_refresh"] is None  # a cold slot waits for a get
    work.fail, work.gate = None, None
    assert manager.get("work", DEVOPS) and work.count() == 2  # not a transient error: no backoff gate


def test_throttled_is_not_retried_before_retry_after():
    clock = FakeClock()
    source = FakeSource()
    manager = TokenManager({"work": source}, clock)
    held = manager.get("work", DEVOPS)
    due = manager.next_due()
    source.fail = Throttled("AADSTS50196: too many requests", retry_after=120)
    drive(clock, manager, due)
    assert source.count() == 2
    assert manager.next_due() >= due + 120
    clock.advance(119.5)
    manager.run_due()
    assert manager.get("work", DEVOPS) is held and source.count() == 2
    drive(clock, manager, due + 120.5)
    assert source.count() == 3


def test_throttled_cold_slot_answers_throttled_without_asking_again():
    clock = FakeClock()
    source = FakeSource()
    source.fail = Throttled("slow down", retry_after=120)
    manager = TokenManager({"work": source}, clock)
    with pytest.raises(Throttled) as first:
        manager.get("work", DEVOPS)
    assert first.value.retry_after == 120
    clock.advance(30)
    with pytest.raises(Throttled) as second:
        manager.get("work", DEVOPS)
    assert second.value.retry_after == pytest.approx(90) and source.count() == 1
    clock.advance(90)
    source.fail = None
    assert manager.get("work", DEVOPS) and source.count() == 2


def test_unavailable_idp_backs_off_exponentially_to_five_minutes():
    clock = FakeClock()
    source = FakeSource()
    manager = TokenManager({"work": source}, clock, rng=ConstRandom(0.999))
    manager.get("work", DEVOPS)
    source.fail = IdpUnavailable("connection refused")
    drive(clock, manager, manager.next_due())
    while source.count() < 12:
        drive(clock, manager, manager.next_due())
    times = [at for at, _ in source.calls[1:]]
    gaps = [b - a for a, b in zip(times, times[1:])]
    expected = [5, 10, 20, 40, 80, 160, 300, 300, 300, 300]
    assert gaps == pytest.approx([0.999 * e for e in expected])
    assert state_of(manager, "work", DEVOPS)["failures"] == 11


def test_backoff_uses_full_jitter():
    clock = FakeClock()
    source = FakeSource()
    manager = TokenManager({"work": source}, clock, rng=random.Random(11))
    manager.get("work", DEVOPS)
    source.fail = IdpUnavailable("timeout")
    drive(clock, manager, manager.next_due())
    while source.count() < 40:
        drive(clock, manager, manager.next_due())
    times = [at for at, _ in source.calls[1:]]
    gaps = [b - a for a, b in zip(times, times[1:])]
    for attempt, gap in enumerate(gaps, start=1):
        assert schedule.BACKOFF_FLOOR <= gap <= schedule.backoff_cap(attempt)
    assert min(gaps[8:]) < 150 < max(gaps[8:])  # capped attempts still spread over [0, 300]


def test_invalidate_drops_only_the_held_token():
    clock = FakeClock()
    source = FakeSource()
    manager = TokenManager({"work": source}, clock)
    first = manager.get("work", DEVOPS)
    assert not manager.invalidate("work", DEVOPS, first.access_token + "x")
    assert not manager.invalidate("work", FEED, first.access_token)
    assert manager.get("work", DEVOPS) is first and source.count() == 1
    assert manager.invalidate("work", DEVOPS, first.access_token)
    second = manager.get("work", DEVOPS)
    assert source.count() == 2 and second.access_token != first.access_token
    assert not manager.invalidate("work", DEVOPS, first.access_token)


@pytest.mark.parametrize("bad", ["abc\rdef", "abc\ndef", "abc\0def", ""])
def test_tokens_with_control_characters_are_never_handed_out(bad):
    clock = FakeClock()
    source = FakeSource()
    manager = TokenManager({"work": source}, clock)
    source.next_text = bad or None
    if not bad:
        source.fail = None
        source.acquire = lambda scopes, now: Token("", now + 3600, None)  # type: ignore[assignment]
    with pytest.raises(AuthFailed) as excinfo:
        manager.get("work", DEVOPS)
    assert "malformed" in str(excinfo.value) and (not bad or bad not in str(excinfo.value))


def test_a_malformed_refresh_keeps_serving_the_good_token():
    clock = FakeClock()
    source = FakeSource()
    manager = TokenManager({"work": source}, clock)
    good = manager.get("work", DEVOPS)
    source.next_text = "evil\r\nX-Injected: 1"
    drive(clock, manager, manager.next_due())
    assert manager.get("work", DEVOPS) is good
    assert state_of(manager, "work", DEVOPS)["state"] == "degraded"


def test_source_bug_becomes_auth_failed_without_its_message():
    class Broken(FakeSource):
        def acquire(self, scopes, now):
            raise ValueError("secret-assertion-eyJ")

    manager = TokenManager({"work": Broken()}, FakeClock())
    with pytest.raises(AuthFailed) as excinfo:
        manager.get("work", DEVOPS)
    assert "ValueError" in str(excinfo.value) and "eyJ" not in str(excinfo.value)


def test_unknown_account_is_a_config_error():
    manager = TokenManager({"work": FakeSource()}, FakeClock())
    with pytest.raises(ConfigError):
        manager.get("nobody", DEVOPS)


def test_idle_slots_stop_refreshing_and_wake_up_on_use():
    clock = FakeClock()
    source = FakeSource()
    manager = TokenManager({"work": source}, clock, idle_after=2 * HOUR)
    manager.get("work", DEVOPS)
    drive(clock, manager, clock.now() + 10 * HOUR)
    calls = source.count()
    assert calls <= 1 + int(2 * HOUR // 1380) + 1
    assert manager.next_due() is None and state_of(manager, "work", DEVOPS)["state"] == "expired"
    token = manager.get("work", DEVOPS)
    assert source.count() == calls + 1 and manager.next_due() is not None
    assert token.expires_on - clock.now() > 3000


def test_pinned_slot_stays_warm_and_reports_each_token():
    clock = FakeClock()
    source = FakeSource()
    seen: List[Tuple[str, Tuple[str, ...], Token]] = []
    manager = TokenManager({"work": source}, clock, idle_after=HOUR,
                           on_token=lambda a, s, t: seen.append((a, s, t)))
    manager.pin("work", FEED)
    drive(clock, manager, clock.now() + 10 * HOUR)
    assert source.count() >= 10 * HOUR // 2580
    assert [t for _, _, t in seen] == [t for _, _, _, t in source.issued]
    assert all((a, s) == ("work", FEED) for a, s, _ in seen)
    assert state_of(manager, "work", FEED)["pinned"]


def test_on_token_failure_does_not_break_get():
    def boom(account, scopes, token):
        raise OSError("disk full")

    manager = TokenManager({"work": FakeSource()}, FakeClock(), on_token=boom)
    assert manager.get("work", DEVOPS)


def test_drop_account_forgets_its_slots():
    clock = FakeClock()
    work, bot = FakeSource("work"), FakeSource("bot")
    manager = TokenManager({"work": work, "bot": bot}, clock)
    for account, scopes in SLOTS:
        manager.get(account, scopes)
    assert manager.drop_account("work") == 2
    assert {s["account"] for s in manager.status()} == {"bot"}
    manager.get("work", DEVOPS)
    assert work.count() == 3


def test_replace_sources_keeps_unchanged_accounts_only():
    clock = FakeClock()
    sources = {"work": FakeSource(("work", "v1")), "bot": FakeSource(("bot", "v1")),
               "old": FakeSource(("old", "v1"))}
    manager = TokenManager(sources, clock)
    for account in sources:
        manager.get(account, DEVOPS)
    same_config = FakeSource(("work", "v1"))
    changed = FakeSource(("bot", "v2"))
    manager.replace_sources({"work": same_config, "bot": changed})
    assert {s["account"] for s in manager.status()} == {"work"}
    manager.get("work", DEVOPS)
    assert same_config.count() == 0  # the held token survived the reload
    manager.get("bot", DEVOPS)
    assert changed.count() == 1
    with pytest.raises(ConfigError):
        manager.get("old", DEVOPS)
    drive(clock, manager, clock.now() + 2 * HOUR)
    assert same_config.count() >= 1 and sources["work"].count() == 1  # refreshes use the new source


def test_status_never_contains_a_token():
    clock, sources, manager = three_slots()
    drive(clock, manager, clock.now() + 3 * HOUR)
    text = json.dumps(manager.status())
    for source in sources.values():
        for _, _, _, token in source.issued:
            assert token.access_token not in text
    assert {s["state"] for s in manager.status()} == {"fresh"}


def test_refresher_thread_runs_due_refreshes_when_woken():
    clock = FakeClock()
    source = FakeSource()
    refreshed = threading.Semaphore(0)
    manager = TokenManager({"work": source}, clock, on_token=lambda *args: refreshed.release())
    refresher = Refresher(manager, clock)
    refresher.start()
    try:
        manager.pin("work", FEED)  # a new pinned slot wakes the thread by itself
        assert refreshed.acquire(timeout=10)
        clock.set(manager.next_due())
        refresher.wake()
        assert refreshed.acquire(timeout=10)
        assert source.count() == 2
    finally:
        refresher.stop()
    clock.set(manager.next_due())
    manager.wakeup.set()
    assert not refreshed.acquire(timeout=0.2) and source.count() == 2  # stopped means stopped


def test_not_signed_in_is_shared_as_its_own_class():
    source = FakeSource()
    source.fail = NotSignedIn("work: run credhelper login work")
    manager = TokenManager({"work": source}, FakeClock())
    with pytest.raises(NotSignedIn):
        manager.get("work", DEVOPS)


def test_peek_returns_only_what_get_would_serve_from_memory():
    clock = FakeClock()
    source = FakeSource()
    manager = TokenManager({"work": source}, clock, idle_after=2 * HOUR)
    assert manager.peek("work", DEVOPS) is None and source.count() == 0  # cold: no acquisition
    first = manager.get("work", DEVOPS)
    assert manager.peek("work", DEVOPS) is first and source.count() == 1
    assert manager.peek("work", FEED) is None and manager.peek("nobody", DEVOPS) is None
    clock.set(first.expires_on - schedule.FRESH_MARGIN + 1)  # usable, but no longer fresh
    assert manager.peek("work", DEVOPS) is None and source.count() == 1
    second = manager.get("work", DEVOPS)
    assert manager.invalidate("work", DEVOPS, second.access_token)
    assert manager.peek("work", DEVOPS) is None
    third = manager.get("work", DEVOPS)
    drive(clock, manager, clock.now() + 10 * HOUR)  # idle: parked, expired
    assert manager.peek("work", DEVOPS) is None and third is not None


def test_waiting_for_a_persons_sign_in_is_not_a_failure_to_retry(caplog):
    clock = FakeClock()
    source = FakeSource()
    source.fail = NotSignedIn("account 'work' needs sign-in: run credhelper login work")
    manager = TokenManager({"work": source}, clock)
    manager.pin("work", FEED)  # an npm registry keeps the slot warm with nobody calling get
    with caplog.at_level("INFO", logger="credhelper.tokens"):
        drive(clock, manager, clock.now() + HOUR)
        with pytest.raises(NotSignedIn):
            manager.get("work", FEED)  # a tool asking is told at once (no network behind it)
    assert source.count() == 2 and manager.next_due() is None  # no background retries
    state = state_of(manager, "work", FEED)
    assert state["failures"] == 0 and "credhelper login work" in state["reason"]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "work: waiting for sign-in (credhelper login work)")]
    source.fail = None  # the person signed in: the next get serves at once
    assert manager.get("work", FEED).access_token.startswith("tok-")
