"""Where the cache key lives: the system keyring when a real one is there, else a 0600 key file.

A real keyring keeps the key off the disk the cache sits on. A key file kept apart from the cache
(``state_dir/key`` vs ``state_dir/cache.bin``) only protects a copied cache file on its own; any
process running as the same user can read both. ``describe()`` says so, for ``doctor``.
"""

import base64
import binascii
import os
import stat
from pathlib import Path
from typing import Any, Optional, Tuple

from .atomic import fsync_dir
from .errors import VaultError
from .vault import (
    KEY_SIZE, Keystore, private_dir, remove_orphans, temp_name, unlink_quietly, why, write_all,
)

SERVICE = "credhelper"
USERNAME = "cache-key"


class KeyFileStore:
    """32 random bytes in a 0600 file, created once; a file others can read is refused."""

    def __init__(self, path: Path, note: Optional[str] = None) -> None:
        self.path = Path(path)
        self.note = note  # why the keyring was not used, for doctor

    def get_key(self, create: bool = False) -> Optional[bytes]:
        """Read the key; with ``create`` make it first when the file does not exist."""
        if create:  # a save: sweep the temp copies of a key a killed process was writing
            remove_orphans(self.path)
        key = self._read()
        if key is None and create:
            self._create()
            key = self._read()
        return key

    def describe(self) -> str:
        """Where the key is and what that protects against."""
        line = (f"key file {self.path} (0600, apart from the cache): protects a copied cache file "
                f"on its own, not against programs running as you")
        return f"{line}; keyring not used: {self.note}" if self.note else line

    def _read(self) -> Optional[bytes]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise VaultError(f"cannot read key file {self.path}: {why(exc)}") from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
                raise VaultError(f"key file {self.path} is not a regular file of ours; refusing it")
            mode = stat.S_IMODE(info.st_mode)
            if mode & 0o077:
                raise VaultError(f"key file {self.path} is open to other users (mode {mode:o}); "
                                 f"run: chmod 600 {self.path}")
            key = os.read(fd, KEY_SIZE + 1)
        finally:
            os.close(fd)
        if len(key) != KEY_SIZE:
            raise VaultError(f"key file {self.path} is damaged; remove it and sign in again")
        return key

    def _create(self) -> None:
        private_dir(self.path.parent)
        tmp = temp_name(self.path)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                write_all(fd, os.urandom(KEY_SIZE))
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                # link() publishes a complete key or nothing and never replaces an existing one:
                # if another process won the race, both use its key.
                os.link(tmp, self.path)
            except FileExistsError:
                pass
            fsync_dir(self.path.parent)
        except OSError as exc:
            raise VaultError(f"cannot create key file {self.path}: {why(exc)}") from exc
        finally:
            unlink_quietly(tmp)


class KeyringStore:
    """The key, base64, in one keyring entry of a backend ``secure_backend`` accepted."""

    def __init__(self, backend: Any, service: str = SERVICE, username: str = USERNAME) -> None:
        self.backend = backend
        self.service = service
        self.username = username

    def get_key(self, create: bool = False) -> Optional[bytes]:
        """Read the key; with ``create`` store a new one when the entry does not exist."""
        text = self._call("read", self.backend.get_password, self.service, self.username)
        if text is None:
            if not create:
                return None
            fresh = base64.b64encode(os.urandom(KEY_SIZE)).decode("ascii")
            self._call("write", self.backend.set_password, self.service, self.username, fresh)
            # read back: if another process stored its key meanwhile, use the one that stuck
            text = self._call("read", self.backend.get_password, self.service, self.username)
        try:
            key = base64.b64decode(text or "", validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_SIZE:
            raise VaultError(f"keyring entry {self.service}/{self.username} is not a credhelper key; "
                             f"delete it and sign in again")
        return key

    def describe(self) -> str:
        """Where the key is and what that protects against."""
        return (f"system keyring {_name(self.backend)} (entry {self.service}/{self.username}): "
                f"the key is not on disk beside the cache")

    def _call(self, what: str, func: Any, *args: str) -> Any:
        try:
            return func(*args)
        except Exception as exc:  # keyring backends raise anything from D-Bus errors to their own
            raise VaultError(f"keyring {_name(self.backend)}: cannot {what} the cache key "
                             f"({type(exc).__name__})") from exc


def _name(backend: Any) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_ours(backend: Any) -> bool:
    return type(backend).__module__.split(".")[0] == "credhelper"


def _priority(backend: Any) -> float:
    try:
        return float(backend.priority)
    except Exception:  # noqa: BLE001 - keyring says "not viable" by raising anything
        return 0.0


def _rejection(backend: Any) -> Optional[str]:
    """Why ``backend`` must not hold our key, or None when it may."""
    from keyring.backends import fail, null

    name = _name(backend)
    module = type(backend).__module__
    if _is_ours(backend):
        return f"{name} is credhelper's own backend"
    if isinstance(backend, (fail.Keyring, null.Keyring)):
        return f"{name} stores nothing"
    if module.startswith("keyrings.alt") or "plaintext" in name.lower():
        return f"{name} keeps secrets in a plain or password-prompting file"
    try:
        priority = float(backend.priority)
    except Exception:
        return f"{name} is not usable here"
    if priority < 1:
        return f"{name} is not usable here (priority {priority:g})"
    return None


def secure_backend(backend: Any = None) -> Tuple[Optional[Any], str]:
    """A keyring backend fit for the key (the chosen one, or the best of a chain), and why not."""
    import keyring
    from keyring.backends.chainer import ChainerBackend

    chosen = backend if backend is not None else keyring.get_keyring()
    # Use a chain's member directly: through the chain, a lookup could reach credhelper's own
    # backend, which asks the daemon, which is us.
    candidates = list(chosen.backends) if isinstance(chosen, ChainerBackend) else [chosen]
    if backend is None and _is_ours(chosen):
        # keyring picked us only because nothing ranks higher here: look past us for a real store
        from keyring.backend import get_all_keyring

        candidates = sorted((b for b in get_all_keyring() if not isinstance(b, ChainerBackend)
                             and _rejection(b) is None), key=_priority, reverse=True)
        if not candidates:
            return None, "no system keyring (such as the Secret Service) is available here"
    reasons = []
    for candidate in candidates:
        reason = _rejection(candidate)
        if reason is None:
            return candidate, f"using {_name(candidate)}"
        reasons.append(reason)
    return None, "; ".join(reasons) or f"{_name(chosen)} has no backends to chain"


def choose_keystore(state_dir: Path, backend: Any = None) -> Keystore:
    """The keyring when a real backend works here, else ``state_dir/key``."""
    found, reason = secure_backend(backend)
    if found is not None:
        store = KeyringStore(found)
        try:
            store.get_key(create=False)
            return store
        except VaultError as exc:
            reason = exc.message
    return KeyFileStore(Path(state_dir) / "key", note=reason)
