"""FileWatcher with real inotify events: one call per burst, never while a writer holds the file."""

import threading
import time
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

from credhelper import watch
from credhelper.watch import FileWatcher

DELAY = 0.1


class Seen:
    """What the file held at each callback."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.calls: List[Optional[str]] = []
        self.event = threading.Event()

    def __call__(self) -> None:
        try:
            self.calls.append(self.path.read_text())
        except FileNotFoundError:
            self.calls.append(None)
        self.event.set()

    def wait(self, timeout: float = 5.0) -> bool:
        return self.event.wait(timeout)


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[Seen]:
    path = tmp_path / "dir" / ".npmrc"
    seen = Seen(path)
    watcher = FileWatcher(path, seen, delay=DELAY)
    watcher.start()  # creates the missing directory
    yield seen
    watcher.stop()


def test_a_burst_of_writes_gives_one_call_after_it(watched: Seen) -> None:
    for i in range(5):
        watched.path.write_text(f"line {i}\n")
    assert watched.wait()
    time.sleep(DELAY * 4)
    assert watched.calls == ["line 4\n"]


def test_no_call_while_a_writer_holds_the_file_between_truncate_and_write(watched: Seen) -> None:
    watched.path.write_text("before\n")
    assert watched.wait()
    watched.event.clear()
    del watched.calls[:]
    with open(watched.path, "w") as f:  # truncated now: a reader would see an empty file
        time.sleep(DELAY * 8)  # a writer descheduled on a busy machine, far past the quiet time
        assert watched.calls == []
        f.write("fund=false\n")
    assert watched.wait()
    time.sleep(DELAY * 3)
    assert watched.calls == ["fund=false\n"]


def test_a_writer_that_never_closes_is_not_waited_for_forever(
        watched: Seen, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch, "WRITER_WAIT", DELAY * 5)
    with open(watched.path, "w") as f:
        f.write("half")
        f.flush()
        assert watched.wait(), "no call while the file stayed open"
        assert watched.calls == ["half"]


def test_a_deleted_or_replaced_file_is_reported(watched: Seen, tmp_path: Path) -> None:
    watched.path.write_text("x\n")
    assert watched.wait()
    watched.event.clear()
    watched.path.unlink()
    assert watched.wait()
    assert watched.calls[-1] is None
    watched.event.clear()
    other = watched.path.with_name("tmp")
    other.write_text("replaced\n")
    other.rename(watched.path)
    assert watched.wait()
    assert watched.calls[-1] == "replaced\n"


def test_no_call_after_stop(tmp_path: Path) -> None:
    path = tmp_path / "f"
    seen = Seen(path)
    watcher = FileWatcher(path, seen, delay=DELAY)
    watcher.start()
    path.write_text("x")
    watcher.stop()
    time.sleep(DELAY * 4)
    assert seen.calls == []
