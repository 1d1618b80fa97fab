"""Faults on demand for the token endpoints: queued one-shot failures and timed outages."""

import threading
import time
from dataclasses import dataclass
from typing import Callable, List, Optional

KINDS = ("500", "429", "timeout", "invalid_grant", "invalid_client", "interaction_required",
         "outage", "reset", "slow")


@dataclass
class Fault:
    """One planned failure; ``times`` counts the requests it still spoils."""

    kind: str
    times: int = 1
    retry_after: Optional[int] = None
    seconds: Optional[float] = None
    until: Optional[float] = None     # outages: monotonic deadline, None = until cleared


class Faults:
    """A thread-safe queue of faults; an active outage beats everything queued."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._queue: List[Fault] = []
        self._outage: Optional[Fault] = None

    def add(self, kind: str, times: int = 1, retry_after: Optional[int] = None,
            seconds: Optional[float] = None) -> None:
        """Plan ``times`` failures of ``kind`` (``outage``: a window of ``seconds``)."""
        if kind not in KINDS:
            raise ValueError("unknown fault kind {!r}; one of {}".format(kind, ", ".join(KINDS)))
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            if kind == "outage":
                until = None if seconds is None else self._clock() + seconds
                self._outage = Fault(kind, times, retry_after, seconds, until)
            else:
                self._queue.append(Fault(kind, times, retry_after, seconds))

    def clear(self) -> None:
        """Forget every planned fault and end any outage."""
        with self._lock:
            self._queue.clear()
            self._outage = None

    def take(self) -> Optional[Fault]:
        """The fault the next request suffers, if any, using up one of its ``times``."""
        with self._lock:
            outage = self._outage
            if outage is not None:
                if outage.until is None or self._clock() < outage.until:
                    return outage
                self._outage = None
            if not self._queue:
                return None
            fault = self._queue[0]
            fault.times -= 1
            if fault.times <= 0:
                self._queue.pop(0)
            return fault

    def pending(self) -> List[dict]:
        """What is still planned, for ``/_emulator/stats``."""
        with self._lock:
            planned = [dict(vars(f)) for f in self._queue]
            if self._outage is not None:
                planned.insert(0, dict(vars(self._outage)))
            return planned
