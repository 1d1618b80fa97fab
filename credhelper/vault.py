"""Encrypted persistence of the MSAL cache (DESIGN §6.5): ``Vault.load`` / ``Vault.save``.

File format: ``CHVAULT`` + version byte, a random 96-bit nonce, then AES-256-GCM ciphertext and tag,
with the 8-byte header as associated data (a version downgrade cannot be spliced in). Writes go to
a 0600 temp file in the same directory, are fsynced, renamed over the cache and the directory is
fsynced: a crash leaves the old file or the new one, never a mix. A cache that cannot be read
(damaged, truncated, encrypted under a lost key) is moved aside and reported, never fatal: the
worst case is signing in again. Where the key lives is ``keystore.py``'s business.
"""

import logging
import os
import secrets
import time
from pathlib import Path
from typing import Callable, Optional, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .atomic import fsync_dir
from .errors import CredhelperError, VaultError
from .paths import ensure_private_dir

log = logging.getLogger(__name__)

MAGIC = b"CHVAULT"
VERSION = 1
HEADER = MAGIC + bytes([VERSION])
NONCE_SIZE = 12
TAG_SIZE = 16
KEY_SIZE = 32

Writer = Callable[[int, bytes], None]


class Keystore(Protocol):
    """Where the 32-byte cache key lives."""

    def get_key(self, create: bool = False) -> Optional[bytes]:
        """The key; with ``create`` make one when there is none, else None when there is none."""
        ...

    def describe(self) -> str:
        """One honest line for ``doctor``: where the key is and what that protects against."""
        ...


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def why(exc: OSError) -> str:
    """An OSError as a short phrase (``No space left on device``), no path or traceback."""
    return exc.strerror or type(exc).__name__


def private_dir(directory: Path) -> None:
    """``paths.ensure_private_dir``, with every failure as a ``VaultError``."""
    try:
        ensure_private_dir(directory)
    except CredhelperError as exc:
        raise VaultError(exc.message) from exc
    except OSError as exc:
        raise VaultError(f"cannot create {directory}: {why(exc)}") from exc


def temp_name(path: Path) -> Path:
    """A fresh temp path beside ``path``; the pid in it lets a later run clean up after a kill."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def unlink_quietly(path: Path) -> None:
    """Remove ``path`` if it is there."""
    try:
        os.unlink(path)
    except OSError:
        pass


class Vault:
    """One encrypted file; ``writer`` is the fault hook tests use to cut a write short."""

    def __init__(self, path: Path, keystore: Keystore, writer: Optional[Writer] = None) -> None:
        self.path = Path(path)
        self.keystore = keystore
        self._writer = writer or write_all
        self.problem: Optional[str] = None  # set when a cache was moved aside; shown by doctor

    def load(self) -> Optional[bytes]:
        """The stored bytes; None when there is no cache or it had to be moved aside."""
        try:
            blob = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise VaultError(f"cannot read {self.path}: {why(exc)}") from exc
        n = len(HEADER)
        header, nonce, body = blob[:n], blob[n:n + NONCE_SIZE], blob[n + NONCE_SIZE:]
        if not header.startswith(MAGIC) or len(body) < TAG_SIZE:
            self._set_aside("not a credhelper cache, or cut short")
            return None
        if header != HEADER:
            self._set_aside(f"unknown format version {header[-1]}")
            return None
        key = self.keystore.get_key(create=False)
        if key is None:
            self._set_aside("its key is gone")
            return None
        try:
            return AESGCM(key).decrypt(nonce, body, header)
        except InvalidTag:
            self._set_aside("it does not decrypt: damaged, or the key changed")
            return None

    def save(self, data: bytes) -> None:
        """Encrypt and atomically replace the cache; ``VaultError`` leaves the old file intact."""
        key = self.keystore.get_key(create=True)
        if key is None or len(key) != KEY_SIZE:
            raise VaultError(f"no usable key for {self.path}")
        nonce = os.urandom(NONCE_SIZE)
        blob = HEADER + nonce + AESGCM(key).encrypt(nonce, data, HEADER)
        directory = self.path.parent
        private_dir(directory)
        remove_orphans(self.path)
        tmp = temp_name(self.path)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                self._writer(fd, blob)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            fsync_dir(directory)
        except OSError as exc:
            unlink_quietly(tmp)
            raise VaultError(f"cannot write {self.path}: {why(exc)}") from exc
        except BaseException:
            unlink_quietly(tmp)
            raise

    def _set_aside(self, reason: str) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        try:
            os.replace(self.path, target)
            where = f"moved to {target.name}"
        except OSError as exc:  # the next save replaces it anyway
            where = f"could not move it aside ({why(exc)})"
        self.problem = f"cache {self.path} unreadable ({reason}); {where}; sign in again if asked"
        log.warning("%s", self.problem)
        return None


def remove_orphans(path: Path) -> None:
    """Delete the temp files (``temp_name``) of processes killed while writing ``path``.

    A live writer's (another pid) are left alone.
    """
    for orphan in path.parent.glob(f".{path.name}.tmp-*"):
        try:
            pid = int(orphan.name.rsplit("-", 2)[-2])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            unlink_quietly(orphan)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
