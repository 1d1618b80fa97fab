"""Call back when one file is created, changed, replaced or deleted (watchdog, debounced)."""

import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Optional

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger("credhelper.watch")
# watchdog reports reads too; the reload's own read (or doctor's) must not trigger another reload
_READ_ONLY = frozenset({"opened", "closed_no_write"})


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
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self._delay, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        try:
            self._callback()
        except Exception as exc:  # noqa: BLE001 - a watcher thread must survive its callback
            log.warning("handling a change to %s failed: %s", self.path, exc)
