"""Refresh arithmetic: pure functions, checked at their edges and over many random draws."""

import random

import pytest

from credhelper import schedule
from credhelper.auth.base import Token
from credhelper.clock import FakeClock, SystemClock

T0 = 1_700_000_000.0


@pytest.mark.parametrize("lifetime", [3600.0, 4500.0, 5400.0])
def test_refresh_lands_before_half_life_with_lead_and_jitter(lifetime):
    rng = random.Random(7)
    for _ in range(1000):
        when = schedule.next_refresh(T0, T0 + lifetime, T0 + lifetime / 2, rng.random())
        offset = when - T0
        assert lifetime / 2 - 120 - 300 <= offset <= lifetime / 2 - 120
        # a one-hour token keeps more than 30 minutes of cover when the first refresh fails
        assert T0 + lifetime - when >= 1800 + 120


@pytest.mark.parametrize("lifetime", [3600.0, 5400.0])
def test_a_first_refresh_spreads_over_the_whole_first_period(lifetime):
    latest = T0 + lifetime / 2 - 120
    assert schedule.next_refresh(T0, T0 + lifetime, None, 0.0, first=True) == T0 + 60
    assert schedule.next_refresh(T0, T0 + lifetime, None, 1.0, first=True) == latest
    draws = [schedule.next_refresh(T0, T0 + lifetime, None, i / 1000, first=True) - T0
             for i in range(1000)]
    # uniform: each quarter of the window gets a quarter of the slots
    width = (latest - T0 - 60) / 4
    quarters = [sum(1 for d in draws if 60 + q * width <= d < 60 + (q + 1) * width)
                for q in range(4)]
    assert quarters == [250, 250, 250, 250]


def test_a_first_refresh_keeps_the_expiry_and_floor_rules():
    assert schedule.next_refresh(T0, T0 + 1000, T0 + 900, 1.0, first=True) == T0 + 1000 - 600
    assert schedule.next_refresh(T0, T0 + 30, None, 1.0, first=True) >= T0


def test_jitter_fraction_spreads_linearly():
    early = schedule.next_refresh(T0, T0 + 3600, None, 0.0)
    late = schedule.next_refresh(T0, T0 + 3600, None, 1.0)
    assert early - late == pytest.approx(300.0)
    assert schedule.next_refresh(T0, T0 + 3600, None, 5.0) == late  # clamped, not extrapolated


def test_refresh_on_earlier_than_half_life_wins():
    assert schedule.next_refresh(T0, T0 + 5400, T0 + 1000, 0.0) == T0 + 1000 - 120


def test_never_later_than_ten_minutes_before_expiry():
    # half-life minus lead would be 450 s in; the 10-minute rule pulls it to 400 s
    assert schedule.next_refresh(T0, T0 + 1000, T0 + 900, 0.0) == T0 + 1000 - 600


@pytest.mark.parametrize("expires_in, refresh_in", [(30.0, None), (0.0, None), (-50.0, None),
                                                    (600.0, -100.0), (90.0, 10.0)])
def test_short_or_odd_lifetimes_never_schedule_in_the_past(expires_in, refresh_in):
    refresh_on = None if refresh_in is None else T0 + refresh_in
    when = schedule.next_refresh(T0, T0 + expires_in, refresh_on, 0.5)
    assert when >= T0
    if expires_in >= 120:
        assert when >= T0 + 60  # a short-lived token cannot make the scheduler spin


def test_backoff_caps_double_from_five_seconds_to_five_minutes():
    caps = [schedule.backoff_cap(n) for n in range(1, 10)]
    assert caps == [5, 10, 20, 40, 80, 160, 300, 300, 300]
    assert schedule.backoff_cap(10_000) == 300


def test_backoff_is_full_jitter_with_a_floor():
    assert schedule.backoff(3, 0.5) == pytest.approx(10.0)
    assert schedule.backoff(3, 0.999) == pytest.approx(19.98)
    assert schedule.backoff(1, 0.0) == schedule.BACKOFF_FLOOR
    rng = random.Random(3)
    delays = [schedule.backoff(6, rng.random()) for _ in range(2000)]
    assert all(1.0 <= d <= 160 for d in delays)
    assert min(delays) < 20 and max(delays) > 140  # spread over the whole range, not around a mean


def test_backoff_honours_retry_after():
    assert schedule.backoff(1, 0.9, retry_after=120) == 120
    assert schedule.backoff(9, 0.9, retry_after=1) == pytest.approx(270)


def test_backoff_retries_while_the_held_token_still_covers():
    # plenty of cover: plain full jitter
    assert schedule.backoff(9, 0.9, cover=3000) == pytest.approx(270)
    # 150 s of cover left: try again within 45 s, while the token is still usable
    assert schedule.backoff(9, 0.9, cover=150) == pytest.approx(45)
    assert schedule.backoff(9, 0.9, cover=61) == schedule.BACKOFF_FLOOR
    # nothing usable left to protect: back to the normal delay; Retry-After always wins
    assert schedule.backoff(9, 0.9, cover=30) == pytest.approx(270)
    assert schedule.backoff(9, 0.9, retry_after=120, cover=150) == 120


def test_usable_and_fresh_margins():
    token = Token("t", T0 + 301)
    assert schedule.fresh(token, T0) and not schedule.fresh(token, T0 + 1)
    assert schedule.usable(token, T0 + 240) and not schedule.usable(token, T0 + 241)
    assert not schedule.usable(None, T0)


def test_token_repr_hides_the_secret():
    token = Token("eyJsecret", T0 + 60, None)
    assert "eyJsecret" not in repr(token) and "expires_on" in repr(token)
    with pytest.raises(AttributeError):
        token.access_token = "x"  # type: ignore[misc]


def test_clocks():
    clock = FakeClock(100.0)
    assert clock.advance(5) == 105.0 and clock.now() == 105.0
    assert clock.set(200.0) == 200.0 and clock.set(150.0) == 200.0
    with pytest.raises(ValueError):
        clock.advance(-1)
    assert abs(SystemClock().now() - __import__("time").time()) < 5
