"""The socket's place without os: the same answers as os.path gives, for every environment."""

import os
import posix

import pytest

from credhelper import environment, socketpath

CASES = [
    {},
    {"HOME": "/home/ann"},
    {"HOME": "/home/ann/"},
    {"HOME": ""},
    {"HOME": "/"},
    {"HOME": "/home/ann", "XDG_RUNTIME_DIR": "/run/user/1000"},
    {"HOME": "/home/ann", "XDG_RUNTIME_DIR": "relative/run"},
    {"HOME": "/home/ann", "XDG_RUNTIME_DIR": ""},
    {"HOME": "/home/ann", "XDG_CACHE_HOME": "/var/cache/ann"},
    {"HOME": "/home/ann", "XDG_CACHE_HOME": "cache"},
    {"HOME": "/home/ann", "CREDHELPER_SOCKET": "/tmp/s/daemon.sock"},
    {"HOME": "/home/ann", "CREDHELPER_SOCKET": "  ~/run/daemon.sock  "},
    {"HOME": "/home/ann", "CREDHELPER_SOCKET": "~"},
    {"HOME": "/home/ann", "CREDHELPER_SOCKET": "~root/daemon.sock"},
    {"CREDHELPER_SOCKET": "~/daemon.sock"},
    {"HOME": "/home/ann", "CREDHELPER_SOCKET": "   "},
    {"HOME": "/home/\udcffnn", "XDG_RUNTIME_DIR": "/run/\u00e9t\u00e9"},
]


def reference_socket_file() -> str:
    """What credhelper computed with os and os.path before socketpath existed."""
    explicit = os.environ.get("CREDHELPER_SOCKET", "").strip()
    if explicit:
        return os.path.expanduser(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        return os.path.join(runtime, "credhelper", "daemon.sock")
    cache = os.environ.get("XDG_CACHE_HOME")
    if not (cache and os.path.isabs(cache)):
        cache = os.path.join(os.environ.get("HOME") or os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "credhelper", "daemon.sock")


@pytest.mark.parametrize("env", CASES, ids=[repr(c) for c in CASES])
def test_the_socket_is_where_os_path_puts_it(monkeypatch: pytest.MonkeyPatch, env: dict) -> None:
    for name in ("HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "CREDHELPER_SOCKET"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert socketpath.socket_file() == reference_socket_file()


def test_getenv_sees_what_os_environ_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDHELPER_TEST_VALUE", "caf\u00e9 \udcff")
    assert environment.getenv("CREDHELPER_TEST_VALUE") == os.environ["CREDHELPER_TEST_VALUE"]
    monkeypatch.delenv("CREDHELPER_TEST_VALUE")
    assert environment.getenv("CREDHELPER_TEST_VALUE") is None
    # os.environ is a view of posix.environ: a change made through posix is seen by os too
    assert os.environ._data is posix.environ  # type: ignore[attr-defined]


@pytest.mark.parametrize("parts", [("a",), ("/a", "b"), ("/a/", "b"), ("a", "/b", "c"),
                                   ("", "b"), ("/a", ""), ("/a", "b/", "c"), ("~", "x")])
def test_join_is_os_path_join(parts: tuple) -> None:
    assert socketpath.join(*parts) == os.path.join(*parts)


@pytest.mark.parametrize("path", ["/run/user/1000/credhelper/daemon.sock", "/daemon.sock",
                                  "/a//b/daemon.sock", "daemon.sock",
                                  "run/daemon.sock"])
def test_directory_of_is_the_directory_os_path_finds(path: str) -> None:
    assert os.path.normpath(socketpath.directory_of(path)) == \
        os.path.dirname(os.path.abspath(path))
