"""The background thread that keeps token slots warm: ``run_due``, then one wait.

Like git's credential-cache daemon (``check_expirations()`` feeding ``poll``), the thread does the
arithmetic once per wake-up and sleeps until the next due time, or until the manager signals a
change (a new slot, a finished refresh, a reload) or ``stop()``.
"""

import logging
import threading
from typing import Optional

from .clock import Clock
from .tokens import TokenManager

log = logging.getLogger(__name__)

MAX_WAIT = 60.0  # re-check at least this often: the wall clock can jump (suspend, NTP)


class Refresher:
    """Runs ``manager.run_due`` whenever something is due; ``start()`` / ``stop()``."""

    def __init__(self, manager: TokenManager, clock: Clock, max_wait: float = MAX_WAIT) -> None:
        self._manager = manager
        self._clock = clock
        self._max_wait = max_wait
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.passes = 0  # how many times run_due ran; lets tests wait for progress without sleeping

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="credhelper-refresher", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Run a pass now (a test moved the clock, the config changed)."""
        self._manager.wakeup.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and wait for it; refreshes already started finish on their own."""
        self._stopping.set()
        self._manager.wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stopping.is_set():
            # cleared before the pass, so a change made during it wakes the next wait at once
            self._manager.wakeup.clear()
            try:
                due = self._manager.run_due(wait=False)
            except Exception as exc:  # keep refreshing the other slots whatever one of them did
                log.error("refresh pass failed: %s", type(exc).__name__)
                due = None
            self.passes += 1
            timeout = self._max_wait if due is None else due - self._clock.now()
            self._manager.wakeup.wait(min(max(timeout, 0.0), self._max_wait))
