"""Vault and keystores: encryption, atomic writes under crashes and full disks, key handling."""

import errno
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail, null
from keyring.backends.chainer import ChainerBackend

from credhelper.errors import VaultError
from credhelper.keystore import KeyFileStore, KeyringStore, choose_keystore, secure_backend
from credhelper.vault import HEADER, NONCE_SIZE, Vault

SECRET = b'{"RefreshToken": {"x": {"secret": "0.AXYA-refresh-token-material"}}}'


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(home / var.lower()))


@pytest.fixture
def state(tmp_path) -> Path:
    return tmp_path / "state"


def file_vault(state: Path, **kwargs) -> Vault:
    return Vault(state / "cache.bin", KeyFileStore(state / "key"), **kwargs)


class MemoryKeyring(KeyringBackend):
    priority = 5  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items = {}

    def get_password(self, service, username):
        return self.items.get((service, username))

    def set_password(self, service, username, password):
        self.items[(service, username)] = password

    def delete_password(self, service, username):
        self.items.pop((service, username), None)


class BrokenKeyring(MemoryKeyring):
    def get_password(self, service, username):
        raise RuntimeError("org.freedesktop.DBus.Error.ServiceUnknown")


class OwnBackend(MemoryKeyring):
    pass


OwnBackend.__module__ = "credhelper.frontends.pip_keyring"


class PlaintextKeyring(MemoryKeyring):
    pass


PlaintextKeyring.__module__ = "keyrings.alt.file"


class EmptyChainer(ChainerBackend):
    backends = []  # type: ignore[assignment]


# keyring offers every subclass it has seen to the whole process; these stand-ins must not join
# the chains other test modules build (test_pip_keyring expects only its own stand-in there).
KeyringBackend._classes -= {MemoryKeyring, BrokenKeyring, OwnBackend, PlaintextKeyring, EmptyChainer}


def test_round_trip_is_encrypted_and_private(state):
    vault = file_vault(state)
    assert vault.load() is None  # missing means empty
    vault.save(SECRET)
    raw = (state / "cache.bin").read_bytes()
    assert raw.startswith(HEADER) and b"refresh-token-material" not in raw
    assert stat.S_IMODE(os.stat(state / "cache.bin").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state / "key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    assert file_vault(state).load() == SECRET
    vault.save(b"second")
    assert vault.load() == b"second" and vault.problem is None
    assert sorted(p.name for p in state.iterdir()) == ["cache.bin", "key"]


def test_nonce_is_fresh_for_every_save(state):
    vault = file_vault(state)
    vault.save(SECRET)
    first = (state / "cache.bin").read_bytes()
    vault.save(SECRET)
    second = (state / "cache.bin").read_bytes()
    assert first[len(HEADER):len(HEADER) + NONCE_SIZE] != second[len(HEADER):len(HEADER) + NONCE_SIZE]


def flip_last(raw: bytes) -> bytes:
    return raw[:-1] + bytes([raw[-1] ^ 1])


@pytest.mark.parametrize("damage", [
    lambda raw: b"",
    lambda raw: b"garbage that is not a vault at all, really not",
    lambda raw: raw[:len(HEADER) + NONCE_SIZE + 5],
    lambda raw: raw[:-1],
    flip_last,
    lambda raw: b"CHVAULT\x02" + raw[len(HEADER):],   # a future version
    lambda raw: b"CHVAULT\x01" + bytes([raw[8] ^ 1]) + raw[9:],  # nonce tampered
], ids=["empty", "garbage", "truncated-header", "truncated-tag", "bit-flip", "version", "nonce"])
def test_corrupt_cache_is_moved_aside_and_reported(state, caplog, damage):
    vault = file_vault(state)
    vault.save(SECRET)
    cache = state / "cache.bin"
    cache.write_bytes(damage(cache.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="credhelper.vault"):
        assert vault.load() is None
    aside = list(state.glob("cache.bin.corrupt-*"))
    assert len(aside) == 1 and not cache.exists()
    assert vault.problem and aside[0].name in vault.problem
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0] and "refresh-token" not in warnings[0]
    vault.save(b"fresh start")
    assert vault.load() == b"fresh start"


def test_lost_or_changed_key_moves_the_cache_aside(state):
    vault = file_vault(state)
    vault.save(SECRET)
    (state / "key").unlink()
    assert vault.load() is None and "key is gone" in vault.problem
    vault.save(SECRET)
    key = state / "key"
    key.chmod(0o600)
    key.write_bytes(os.urandom(32))  # a different key, e.g. restored from elsewhere
    assert vault.load() is None and "decrypt" in vault.problem
    assert len(list(state.glob("cache.bin.corrupt-*"))) == 2


class SimulatedCrash(BaseException):
    pass


def test_crash_in_the_middle_of_a_write_keeps_the_old_file(state):
    file_vault(state).save(SECRET)

    def half_then_die(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])
        raise SimulatedCrash()

    with pytest.raises(SimulatedCrash):
        file_vault(state, writer=half_then_die).save(b"new contents that never land")
    assert file_vault(state).load() == SECRET
    assert sorted(p.name for p in state.iterdir()) == ["cache.bin", "key"]


def test_full_disk_raises_vault_error_and_keeps_the_old_file(state):
    file_vault(state).save(SECRET)

    def no_space(fd: int, data: bytes) -> None:
        os.write(fd, data[:10])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(VaultError) as excinfo:
        file_vault(state, writer=no_space).save(b"x" * 1000)
    message = str(excinfo.value)
    assert "No space left on device" in message and "\n" not in message
    assert file_vault(state).load() == SECRET
    assert sorted(p.name for p in state.iterdir()) == ["cache.bin", "key"]


CHILD = r"""
import os, sys
from pathlib import Path
from credhelper.keystore import KeyFileStore
from credhelper.vault import Vault
state = Path(sys.argv[1])
def stall(fd, data):
    os.write(fd, data[: len(data) // 2])
    print("half", flush=True)
    sys.stdin.read()          # wait here until the parent kills us
Vault(state / "cache.bin", KeyFileStore(state / "key"), writer=stall).save(b"N" * 100000)
print("finished", flush=True)
"""


def test_sigkill_mid_save_leaves_the_old_cache_readable(state):
    file_vault(state).save(SECRET)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(state)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "half\n"
        orphans = list(state.glob(".cache.bin.tmp-*"))
        assert len(orphans) == 1 and orphans[0].stat().st_size > 0
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        child.stdin.close()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert file_vault(state).load() == SECRET
    file_vault(state).save(b"after the crash")  # also sweeps the dead writer's temp file
    assert sorted(p.name for p in state.iterdir()) == ["cache.bin", "key"]
    assert file_vault(state).load() == b"after the crash"


def test_key_file_refuses_loose_modes_symlinks_and_damage(state, tmp_path):
    store = KeyFileStore(state / "key")
    key = store.get_key(create=True)
    assert len(key) == 32 and store.get_key() == key
    os.chmod(state / "key", 0o644)
    with pytest.raises(VaultError, match="chmod 600"):
        store.get_key()
    os.chmod(state / "key", 0o600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(os.urandom(32))
    os.chmod(elsewhere, 0o600)
    link = KeyFileStore(state / "link")
    (state / "link").symlink_to(elsewhere)
    with pytest.raises(VaultError):
        link.get_key()
    (state / "key").write_bytes(b"short")
    with pytest.raises(VaultError, match="damaged"):
        store.get_key()


def test_key_file_creation_race_yields_one_key(state):
    barrier = threading.Barrier(16)
    keys = []

    def create() -> None:
        barrier.wait()
        keys.append(KeyFileStore(state / "key").get_key(create=True))

    threads = [threading.Thread(target=create) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(keys) == 16 and len(set(keys)) == 1
    assert sorted(p.name for p in state.iterdir()) == ["key"]


def test_state_dir_open_to_others_is_refused(state):
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    with pytest.raises(VaultError, match="chmod 700"):
        file_vault(state).save(SECRET)


def test_keyring_store_round_trip(state):
    backend = MemoryKeyring()
    store = choose_keystore(state, backend=backend)
    assert isinstance(store, KeyringStore)
    vault = Vault(state / "cache.bin", store)
    vault.save(SECRET)
    assert Vault(state / "cache.bin", KeyringStore(backend)).load() == SECRET
    assert len(backend.items) == 1 and not (state / "key").exists()
    assert "keyring" in store.describe() and "MemoryKeyring" in store.describe()
    backend.items.clear()
    assert vault.load() is None and "key is gone" in vault.problem


@pytest.mark.parametrize("backend", [fail.Keyring(), null.Keyring(), OwnBackend(), PlaintextKeyring(),
                                     EmptyChainer()],
                         ids=["fail", "null", "credhelper", "plaintext", "empty-chainer"])
def test_insecure_keyrings_fall_back_to_a_key_file(state, backend):
    found, reason = secure_backend(backend)
    assert found is None and reason
    store = choose_keystore(state, backend=backend)
    assert isinstance(store, KeyFileStore) and store.path == state / "key"
    assert "not against programs running as you" in store.describe() and reason in store.describe()
    Vault(state / "cache.bin", store).save(SECRET)
    assert (state / "key").exists() and getattr(backend, "items", {}) == {}


def test_a_chain_is_searched_for_a_secure_member_used_directly(state):
    secure = MemoryKeyring()

    class Chain(ChainerBackend):
        backends = [OwnBackend(), PlaintextKeyring(), secure]  # type: ignore[assignment]

    found, _ = secure_backend(Chain())
    assert found is secure
    store = choose_keystore(state, backend=Chain())
    assert isinstance(store, KeyringStore) and store.backend is secure


def test_a_failing_keyring_falls_back_and_says_why(state):
    store = choose_keystore(state, backend=BrokenKeyring())
    assert isinstance(store, KeyFileStore)
    assert "BrokenKeyring" in store.describe() and "RuntimeError" in store.describe()


def test_keyring_entry_that_is_not_a_key_is_an_error(state):
    backend = MemoryKeyring()
    backend.set_password("credhelper", "cache-key", "not base64 at all!")
    with pytest.raises(VaultError, match="not a credhelper key"):
        KeyringStore(backend).get_key()


def test_keyring_picking_our_own_backend_looks_past_it(monkeypatch):
    import keyring
    import keyring.backend

    real = MemoryKeyring()
    monkeypatch.setattr(keyring, "get_keyring", lambda: OwnBackend())
    monkeypatch.setattr(keyring.backend, "get_all_keyring", lambda: [OwnBackend(), real, null.Keyring()])
    assert secure_backend()[0] is real
    monkeypatch.setattr(keyring.backend, "get_all_keyring", lambda: [OwnBackend(), null.Keyring()])
    found, reason = secure_backend()
    assert found is None and "no system keyring" in reason
