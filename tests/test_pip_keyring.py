"""The keyring backend: in process, through keyring's chainer, and through the keyring CLI."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from keyring import backend, errors
from keyring.backends.chainer import ChainerBackend

from credhelper.errors import NotSignedIn
from credhelper.frontends import pip_keyring
from credhelper.frontends.pip_keyring import CredhelperKeyring
from fakedaemon import FakeDaemon

KEYRING = Path(sys.executable).parent / "keyring"
TOKEN = "eyJ0eXAiOiJKV1QifQ.tok-pip-1"
INDEX = "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/"
SIGN_IN = "account 'work' needs sign-in: run credhelper login work"


@pytest.fixture
def daemon():
    with FakeDaemon({
        "https://pkgs.dev.azure.com/contoso/": ("entra", TOKEN, 1795000000),
        "https://feed.example:8443/": ("svc", "tok-port", 1795000000),
        "https://nologin.example/": NotSignedIn(SIGN_IN),
    }) as fake:
        yield fake


@pytest.fixture
def env(tmp_path: Path, daemon: FakeDaemon, monkeypatch) -> Dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    values = {
        "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"), "CREDHELPER_CONFIG": str(home / "none.toml"),
        "CREDHELPER_SOCKET": str(daemon.socket_path),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    pip_keyring._told.clear()
    return dict(os.environ, **values)


# --- in process ---------------------------------------------------------------------------


@pytest.mark.parametrize("service,url,user,password", [
    (INDEX, INDEX, "entra", TOKEN),
    ("pkgs.dev.azure.com", "https://pkgs.dev.azure.com/", "entra", TOKEN),
    ("feed.example:8443", "https://feed.example:8443/", "svc", "tok-port"),
    ("HTTPS://feed.example:8443/simple/x/", "https://feed.example:8443/simple/x/", "svc", "tok-port"),
])
def test_routed_urls_and_netlocs_get_the_token(env, daemon, service, url, user, password):
    credential = CredhelperKeyring().get_credential(service, None)
    assert (credential.username, credential.password) == (user, password)
    assert daemon.ops("get") == [{"v": 1, "op": "get", "url": url, "for": "pip"}]


def test_username_given_by_the_caller_does_not_matter(env):
    ring = CredhelperKeyring()
    assert ring.get_credential(INDEX, "__token__").username == "entra"
    assert ring.get_password(INDEX, "__token__") == TOKEN


@pytest.mark.parametrize("service", [
    "https://pypi.org/simple/", "https://pkgs.dev.azure.com@evil.example/contoso/",
    "https://evil.example/pkgs.dev.azure.com/contoso/",
])
def test_unrouted_urls_get_none(env, daemon, service, capsys):
    assert CredhelperKeyring().get_credential(service, None) is None
    assert CredhelperKeyring().get_password(service, "u") is None
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("service", [
    "http://pkgs.dev.azure.com/contoso/", "ftp://pkgs.dev.azure.com/contoso/", "",
    "pkgs.dev.azure.com/contoso", "user@pkgs.dev.azure.com", "pkgs.dev.azure.com\\x",
    "pkgs.dev.azure.com\nx", "https://",
])
def test_non_https_and_odd_services_never_reach_the_daemon(env, daemon, service):
    assert CredhelperKeyring().get_credential(service, None) is None
    assert daemon.requests == []


def test_not_signed_in_is_none_and_one_line(env, capsys):
    ring = CredhelperKeyring()
    assert ring.get_credential("https://nologin.example/simple/", None) is None
    assert ring.get_credential("nologin.example", None) is None  # pip's netloc retry
    out, err = capsys.readouterr()
    assert out == "" and err == f"credhelper: {SIGN_IN}\n"


def test_daemon_unavailable_is_none_and_one_line(env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CREDHELPER_SOCKET", str(tmp_path / "gone.sock"))
    assert CredhelperKeyring().get_credential(INDEX, None) is None
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "credhelper start" in err
    assert "Traceback" not in err


def test_nothing_can_be_stored_or_deleted(env):
    ring = CredhelperKeyring()
    with pytest.raises(errors.PasswordSetError):
        ring.set_password(INDEX, "entra", "secret")
    with pytest.raises(errors.PasswordDeleteError):
        ring.delete_password(INDEX, "entra")


def test_priority_needs_a_socket_or_a_config(tmp_path, monkeypatch):
    monkeypatch.setenv("CREDHELPER_SOCKET", str(tmp_path / "daemon.sock"))
    monkeypatch.setenv("CREDHELPER_CONFIG", str(tmp_path / "config.toml"))
    with pytest.raises(RuntimeError):
        CredhelperKeyring.priority
    assert not CredhelperKeyring.viable
    (tmp_path / "config.toml").write_text("")
    assert CredhelperKeyring.priority > 0 and CredhelperKeyring.viable
    (tmp_path / "config.toml").unlink()
    (tmp_path / "daemon.sock").touch()  # a file, not a daemon of ours listening
    with pytest.raises(RuntimeError):
        CredhelperKeyring.priority
    (tmp_path / "daemon.sock").unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "daemon.sock"))
    listener.listen(1)
    try:
        assert 0 < CredhelperKeyring.priority < 10  # the chainer's priority; we must not hide it
    finally:
        listener.close()


# --- through keyring's chainer, next to a real store ---------------------------------------


class _MemoryKeyring(backend.KeyringBackend):
    """A stand-in for SecretService; viable only inside the chained fixture."""

    enabled = False
    store: Dict[tuple, str] = {}

    @pip_keyring.properties.classproperty
    def priority(cls) -> float:
        if not cls.enabled:
            raise RuntimeError("test backend off")
        return 6  # not 5: test_vault's MemoryKeyring has 5, and ties fall in set order

    def get_password(self, service: str, username: str) -> Optional[str]:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.store.pop((service, username))


def _forget_backends() -> None:
    vars(backend.get_all_keyring).pop("saved_result", None)  # jaraco's @once cache


@pytest.fixture
def chained(env):
    _MemoryKeyring.enabled = True
    _MemoryKeyring.store = {("https://pypi.org/simple/", "me"): "pypi-secret"}
    _forget_backends()
    try:
        chain = ChainerBackend()
        names = [type(ring).__name__ for ring in chain.backends]
        assert names[:2] == ["CredhelperKeyring", "_MemoryKeyring"]
        yield chain
    finally:
        _MemoryKeyring.enabled = False
        _forget_backends()


def test_chainer_asks_us_first_and_others_for_the_rest(chained):
    assert chained.get_credential(INDEX, None).password == TOKEN
    assert chained.get_password("https://pypi.org/simple/", "me") == "pypi-secret"


def test_chainer_stores_and_deletes_in_the_real_store(chained):
    chained.set_password("https://other.example/", "me", "s3cret")
    assert _MemoryKeyring.store[("https://other.example/", "me")] == "s3cret"
    chained.delete_password("https://other.example/", "me")
    assert ("https://other.example/", "me") not in _MemoryKeyring.store


# --- the keyring CLI, as pip's --keyring-provider subprocess runs it ------------------------


def keyring_cli(env: Dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = dict(env, PYTHON_KEYRING_BACKEND="credhelper.frontends.pip_keyring.CredhelperKeyring",
               PYTHONIOENCODING="utf-8")
    return subprocess.run([str(KEYRING), *args], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)


@pytest.mark.parametrize("args", [
    ["--mode=creds", "--output=json", "get", INDEX],               # pip >= 23.x, no username
    ["--mode=creds", "--output=json", "get", INDEX, "__token__"],  # username from the URL
    ["--mode=creds", "--output=json", "get", "pkgs.dev.azure.com"],
])
def test_cli_creds_mode_json(env, args: List[str]):
    result = keyring_cli(env, *args)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"username": "entra", "password": TOKEN}


def test_cli_password_mode_as_older_pips_run_it(env):
    result = keyring_cli(env, "get", INDEX, "__token__")
    assert (result.returncode, result.stdout) == (0, TOKEN + "\n")


@pytest.mark.parametrize("service", ["https://pypi.org/simple/", "http://pkgs.dev.azure.com/contoso/"])
def test_cli_unrouted_is_a_plain_miss(env, service):
    result = keyring_cli(env, "--mode=creds", "--output=json", "get", service)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", "")


def test_cli_not_signed_in_says_why_without_a_traceback(env):
    result = keyring_cli(env, "--mode=creds", "--output=json", "get", "https://nologin.example/x/")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"credhelper: {SIGN_IN}\n"


def test_entry_point_makes_keyring_pick_us_when_set_up(env):
    env = {k: v for k, v in env.items() if k != "PYTHON_KEYRING_BACKEND"}
    listed = subprocess.run([str(KEYRING), "--list-backends"], env=env, capture_output=True,
                            text=True, timeout=60, check=True).stdout
    assert "credhelper.frontends.pip_keyring.CredhelperKeyring (priority: 9)" in listed
    env["CREDHELPER_SOCKET"] = str(Path(env["HOME"]) / "no.sock")
    listed = subprocess.run([str(KEYRING), "--list-backends"], env=env, capture_output=True,
                            text=True, timeout=60, check=True).stdout
    assert "CredhelperKeyring" not in listed


def test_module_imports_nothing_heavy():
    code = (
        "import sys\n"
        "import credhelper.frontends.pip_keyring\n"
        "print(sorted(m for m in ('msal', 'click', 'cryptography', 'watchdog', 'requests')"
        " if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60)
    assert result.stdout.strip() == "[]"
