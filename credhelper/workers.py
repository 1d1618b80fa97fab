"""Worker threads for the daemon's sockets: as many as a burst needs, and gone once it is over.

``ThreadPoolExecutor`` keeps every thread it ever started: one burst of 64 slow requests leaves
64 idle threads (and their stacks) for the daemon's whole life. Here a thread that waits
``idle`` seconds without work ends; the next burst starts new ones.
"""

import logging
import queue
import threading
from typing import Any, Callable, Optional, Set, Tuple

log = logging.getLogger("credhelper.workers")

_Task = Optional[Tuple[Callable[..., Any], Tuple[Any, ...]]]


class Workers:
    """Runs submitted calls on up to ``max_workers`` threads; idle threads end after ``idle`` s."""

    def __init__(self, max_workers: int, name: str, idle: float = 10.0) -> None:
        self._max = max_workers
        self._name = name
        self._idle_timeout = idle
        self._queue: "queue.SimpleQueue[_Task]" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: Set[threading.Thread] = set()
        self._waiting = 0   # threads blocked on the queue, ready for work
        self._backlog = 0   # tasks queued and not yet taken
        self._closed = False
        self._started = 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a worker; RuntimeError once ``shutdown`` has begun."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the workers have been shut down")
            self._backlog += 1
            self._queue.put((fn, args))
            if self._backlog > self._waiting and len(self._threads) < self._max:
                self._started += 1
                thread = threading.Thread(target=self._work, daemon=True,
                                          name=f"{self._name}-{self._started}")
                self._threads.add(thread)
                thread.start()

    def count(self) -> int:
        """Threads alive now (busy or idle)."""
        with self._lock:
            return len(self._threads)

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                self._waiting += 1
            try:
                task = self._queue.get(timeout=self._idle_timeout)
            except queue.Empty:
                with self._lock:
                    self._waiting -= 1
                    # a submit may have counted on this thread just after the wait ran out
                    if self._backlog == 0 or self._closed:
                        self._threads.discard(me)
                        return
                continue
            with self._lock:
                self._waiting -= 1
                if task is not None:
                    self._backlog -= 1
            if task is None:
                with self._lock:
                    self._threads.discard(me)
                return
            fn, args = task
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - one failed task must not end the thread silently
                log.exception("unexpected error in a worker")

    def shutdown(self, wait: bool = True, cancel: bool = True) -> None:
        """Take no more work; with ``cancel``, drop what has not started; with ``wait``, join."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
            if cancel:
                while True:
                    try:
                        if self._queue.get_nowait() is not None:
                            self._backlog -= 1
                    except queue.Empty:
                        break
            for _ in threads:
                self._queue.put(None)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()
