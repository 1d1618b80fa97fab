"""Call back when one file is created, changed, replaced or deleted (watchdog, debounced)."""

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger("credhelper.watch")
# watchdog reports reads too; the reload's own read (or doctor's) must not trigger another reload
_READ_ONLY = frozenset({"opened", "closed_no_write"})
# A "modified" (or "created") with no "closed" yet: a writer still holds the file open, as
# between open(O_TRUNC) and write(). Calling back then would read a half-written file (and a
# rewrite by rename would strand the rest of the writer's bytes in the old inode), so the call
# waits for inotify's close-write, up to WRITER_WAIT for a writer that keeps it open (or a
# platform whose backend reports no closes).
_WRITING = frozenset({"modified", "created"})
_DONE = frozenset({"closed", "deleted", "moved"})
WRITER_WAIT = 5.0


class FileWatcher(FileSystemEventHandler):
    """Watches the directory holding ``path`` (editors replace files, so the file alone won't do)."""

    def __init__(self, path: Path, callback: Callable[[], Any], delay: float = 0.2) -> None:
        super().__init__()
        self.path = Path(os.path.abspath(path))
        self._callback = callback
        self._delay = delay
        self._timer: Optional[threading.Timer] = None
        self._lock = threading.Lock()
        self._observer: Optional[Any] = None
        self._writing_since: Optional[float] = None  # monotonic time of an unclosed write
        self._stopped = False

    def start(self) -> None:
        """Start watching; a missing directory is created so later files are seen."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._observer = Observer()
        self._observer.daemon = True
        self._observer.schedule(self, os.fspath(self.path.parent), recursive=False)
        self._observer.start()

    def stop(self) -> None:
        """Stop watching and drop a pending call."""
        with self._lock:
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)
            self._observer = None

    def on_any_event(self, event: FileSystemEvent) -> None:
        """Schedule one callback for a burst of events touching our file."""
        if event.event_type in _READ_ONLY:
            return
        touched = {getattr(event, "src_path", ""), getattr(event, "dest_path", "")}
        if os.fspath(self.path) not in {os.fsdecode(p) for p in touched if p}:
            return
        with self._lock:
            if event.event_type in _WRITING:
                if self._writing_since is None:
                    self._writing_since = time.monotonic()
            elif event.event_type in _DONE:
                self._writing_since = None
            self._schedule()

    def _schedule(self) -> None:
        """(Re)start the quiet-time timer (called with the lock held)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(self._delay, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._stopped:
                return
            since = self._writing_since
            if since is not None and time.monotonic() - since < WRITER_WAIT:
                self._schedule()  # still open for writing: look again after another quiet spell
                return
            self._writing_since = None
        try:
            self._callback()
        except Exception as exc:  # noqa: BLE001 - a watcher thread must survive its callback
            log.warning("handling a change to %s failed: %s", self.path, exc)
