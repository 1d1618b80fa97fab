"""The daemon's worker threads: a burst gets as many as it needs, and they end once idle."""

import threading

import pytest

from credhelper.workers import Workers
from harness import wait_for


def test_a_burst_grows_the_pool_and_idle_threads_end() -> None:
    pool = Workers(max_workers=16, name="t", idle=0.05)
    release, started = threading.Event(), threading.Semaphore(0)

    def task() -> None:
        started.release()
        release.wait(10)

    for _ in range(12):
        pool.submit(task)
    for _ in range(12):
        assert started.acquire(timeout=10)
    assert pool.count() == 12  # every blocked task got a thread of its own
    release.set()
    assert wait_for(lambda: pool.count() == 0, timeout=10)
    # and the next burst starts threads again
    done = threading.Event()
    pool.submit(done.set)
    assert done.wait(10)
    pool.shutdown()
    assert pool.count() == 0


def test_the_pool_never_exceeds_its_limit_and_runs_everything() -> None:
    pool = Workers(max_workers=3, name="t", idle=5)
    lock, ran, most = threading.Lock(), [], [0]
    busy = [0]
    gate = threading.Event()

    def task(n: int) -> None:
        with lock:
            busy[0] += 1
            most[0] = max(most[0], busy[0])
        gate.wait(10)
        with lock:
            busy[0] -= 1
            ran.append(n)

    for n in range(20):
        pool.submit(task, n)
    gate.set()
    assert wait_for(lambda: len(ran) == 20, timeout=10)
    assert most[0] <= 3 and pool.count() <= 3
    pool.shutdown()


def test_a_failing_task_does_not_end_its_thread_and_shutdown_refuses_more() -> None:
    pool = Workers(max_workers=1, name="t", idle=5)
    done = threading.Event()
    pool.submit(lambda: 1 / 0)
    pool.submit(done.set)
    assert done.wait(10)
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(done.set)
