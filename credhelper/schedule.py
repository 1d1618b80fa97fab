"""Refresh arithmetic (DESIGN §7): times in, times out. No clock reads, no sleeping.

Numbers, for Entra's 60-90 minute tokens:

* ``next_refresh``: the earlier of ``refresh_on`` and the half-life, minus a lead of 2 minutes plus
  a random jitter of up to 5 minutes (both scaled down for short lifetimes: 5 % and 10 % of the
  lifetime), never later than 10 minutes before expiry, never sooner than 1 minute after issue.
  A one-hour token is refreshed 23-28 minutes in, so it still has over 30 minutes of cover when the
  first attempt fails: a 30-minute outage of the identity provider does not reach the user.
* The first token of a slot (a daemon start, a sign-in, an ``invalidate``) is refreshed at a
  uniformly random point between 1 minute after issue and that usual time. Slots that start
  together (a 9:00 rush, a fleet-wide restart) would otherwise come due together, lifetime after
  lifetime; spread over one whole refresh period, they ask at the steady rate from the start
  (``benchmarks/fleet.py`` measures it). The cost is one early refresh per slot start.
* ``backoff``: full jitter over 5 s doubling to 5 min (``rand * cap``), at least 1 s so a failing
  source cannot spin, and never sooner than the provider's ``Retry-After``. While a held token
  still covers us, the next try comes no later than halfway through what is left of its usable
  life: after a long outage the last minutes of cover must not pass in one 5-minute sleep while
  the identity provider is already back.
* ``usable``: a token is handed out only with more than ``SERVE_MARGIN`` seconds left; the hot path
  wants ``FRESH_MARGIN`` (a git fetch must not outlive its token).
"""

from typing import Optional

try:
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object  # type: ignore[assignment]


class Expiring(Protocol):
    """Anything with an expiry, such as ``auth.base.Token``: all this arithmetic needs to know."""

    @property
    def expires_on(self) -> float:
        """Seconds since the epoch when it stops working."""

EXPIRY_LEAD = 600.0      # refresh no later than 10 minutes before expiry
JITTER_LEAD = 120.0      # fixed part of the lead before the half-life mark
JITTER_SPAN = 300.0      # random part, up to 5 minutes
MIN_INTERVAL = 60.0      # a source issuing very short tokens must not make us spin

BACKOFF_BASE = 5.0
BACKOFF_CAP = 300.0
BACKOFF_FLOOR = 1.0

FRESH_MARGIN = 300.0     # served from memory without a second thought
SERVE_MARGIN = 60.0      # still handed out when nothing better can be had (degraded)


def next_refresh(issued_at: float, expires_on: float, refresh_on: Optional[float],
                 jitter_fraction: float, first: bool = False) -> float:
    """When to refresh a token issued at ``issued_at``; ``jitter_fraction`` is a random in [0, 1).

    ``first``: the slot held no token before this one, so spread over the whole first period.
    """
    lifetime = max(0.0, expires_on - issued_at)
    target = issued_at + lifetime / 2
    if refresh_on is not None:
        target = min(target, refresh_on)
    fraction = min(max(jitter_fraction, 0.0), 1.0)
    floor = issued_at + min(MIN_INTERVAL, lifetime / 2)
    target -= min(JITTER_LEAD, 0.05 * lifetime)
    if first:
        latest = max(min(target, expires_on - EXPIRY_LEAD), floor)
        return floor + fraction * (latest - floor)
    target -= fraction * min(JITTER_SPAN, 0.10 * lifetime)
    target = min(target, expires_on - EXPIRY_LEAD)
    return max(target, floor)


def backoff_cap(attempt: int) -> float:
    """The upper bound of the delay after ``attempt`` consecutive failures (1-based)."""
    exponent = min(max(attempt, 1) - 1, 32)  # 2**32 * 5 s is far past the cap; avoids huge ints
    return min(BACKOFF_CAP, BACKOFF_BASE * 2 ** exponent)


def backoff(attempt: int, rand: float, retry_after: Optional[float] = None,
            cover: Optional[float] = None) -> float:
    """Seconds to wait after ``attempt`` consecutive failures; ``rand`` is a random in [0, 1).

    ``cover``: seconds the held token has left, if one is held.
    """
    delay = max(BACKOFF_FLOOR, min(max(rand, 0.0), 1.0) * backoff_cap(attempt))
    if cover is not None and cover > SERVE_MARGIN:
        delay = min(delay, max(BACKOFF_FLOOR, (cover - SERVE_MARGIN) / 2))
    if retry_after is not None and retry_after > delay:
        delay = float(retry_after)
    return delay


def usable(token: Optional[Expiring], now: float, margin: float = SERVE_MARGIN) -> bool:
    """Whether ``token`` may be handed out at ``now`` (more than ``margin`` seconds left)."""
    return token is not None and token.expires_on - now > margin


def fresh(token: Optional[Expiring], now: float) -> bool:
    """Whether ``token`` is good enough to serve without trying to replace it."""
    return usable(token, now, FRESH_MARGIN)
