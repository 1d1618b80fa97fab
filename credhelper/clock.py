"""Time as an object: the daemon reads the wall clock, tests move a fake one by hand."""

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Anything with ``now()`` in epoch seconds."""

    def now(self) -> float:
        """Current time, seconds since the epoch."""
        ...


class SystemClock:
    """The real wall clock (epoch seconds, like the ``expires_on`` values we hand out)."""

    def now(self) -> float:
        """``time.time()``."""
        return time.time()


class FakeClock:
    """A clock that only moves when told to; safe to read from several threads."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        """The time the test last set."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (never backward) and return the new time."""
        if seconds < 0:
            raise ValueError("a FakeClock only moves forward")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, when: float) -> float:
        """Jump forward to the absolute time ``when``."""
        return self.advance(max(0.0, when - self.now()))

    def __repr__(self) -> str:
        return f"FakeClock({self.now()!r})"
