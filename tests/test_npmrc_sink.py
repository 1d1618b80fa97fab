"""The npmrc sink: a managed block, the rest byte-for-byte, restored when npm rewrites the file."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from credhelper.errors import ConfigError
from credhelper.sinks.npmrc import BEGIN, END, NOTE, NpmrcSink, registry_key
from harness import wait_for

REG = "https://pkgs.dev.azure.com/contoso/_packaging/feed/npm/registry/"
REG2 = "https://npm.example:8443/feed"
KEY = "//pkgs.dev.azure.com/contoso/_packaging/feed/npm/registry/"
TOK = "eyJ0eXAiOiJKV1QifQ.tok-npm-1"
TOK2 = "eyJ0eXAiOiJKV1QifQ.tok-npm-2"


def block(*lines: str, nl: str = "\n") -> str:
    return nl.join([BEGIN, NOTE, *lines, END])


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)




@pytest.fixture
def npmrc(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home / ".npmrc"


@pytest.mark.parametrize("url,key", [
    (REG, KEY),
    ("https://pkgs.dev.azure.com/contoso/_packaging/feed/npm/registry", KEY),
    ("https://PKGS.dev.azure.com:443/contoso/_packaging/feed/npm/registry/", KEY),
    ("https://npm.example:8443/feed", "//npm.example:8443/feed/"),
    ("https://npm.example", "//npm.example/"),
    ("https://[::1]:4873/", "//[::1]:4873/"),
])
def test_registry_key_is_what_npm_looks_up(url, key):
    assert registry_key(url) == key


@pytest.mark.parametrize("url", [
    "http://npm.example/", "https://user:pw@npm.example/", "https://npm.example/a=b/",
    "https://npm.example/a;b/", "https://npm.example:99999/", "https:///x/",
])
def test_registry_key_refuses_what_npm_could_not_read(url):
    with pytest.raises(ConfigError):
        registry_key(url)


def test_new_file_gets_the_block_and_mode_0600(npmrc):
    NpmrcSink(npmrc, [REG]).write({REG: TOK})
    assert npmrc.read_text() == block(f"{KEY}:_authToken={TOK}") + "\n"
    assert mode(npmrc) == 0o600


@pytest.mark.parametrize("original", [
    b"registry=https://registry.npmjs.org/\n; a comment\nsave-exact=true\n",
    b"registry=https://registry.npmjs.org/\r\n# comment\r\nfund=false\r\n",
    b"fund=false",                                     # no trailing newline
    b"a=1\r\nb=2",                                     # CRLF and no trailing newline
    b"",
    b"weird=\xff\xfe bytes\n",
])
def test_rest_of_file_is_untouched_and_remove_gives_it_back(npmrc, original):
    npmrc.write_bytes(original)
    npmrc.chmod(0o644)
    sink = NpmrcSink(npmrc, [REG])
    sink.write({REG: TOK})
    data = npmrc.read_bytes()
    assert data.startswith(original) and mode(npmrc) == 0o600
    nl = "\r\n" if b"\r\n" in original else "\n"
    written = block(f"{KEY}:_authToken={TOK}", nl=nl).encode()
    assert written in data and data.count(TOK.encode()) == 1
    sink.remove()
    assert npmrc.read_bytes() == original


def test_block_is_replaced_in_place_between_user_lines(npmrc):
    before, after = "registry=https://r.example/\n", "; trailing comment\nfund=false\n"
    npmrc.write_text(before + block(f"{KEY}:_authToken=old") + "\n" + after)
    NpmrcSink(npmrc, [REG]).write({REG: TOK})
    assert npmrc.read_text() == before + block(f"{KEY}:_authToken={TOK}") + "\n" + after


def test_unchanged_content_is_not_rewritten_but_mode_is_tightened(npmrc):
    sink = NpmrcSink(npmrc, [REG])
    sink.write({REG: TOK})
    npmrc.chmod(0o644)
    inode = os.stat(npmrc).st_ino
    sink.write({REG: TOK})
    assert os.stat(npmrc).st_ino == inode and mode(npmrc) == 0o600
    sink.write({REG: TOK2})
    assert os.stat(npmrc).st_ino != inode  # a new file renamed over the old one


def test_registries_keep_their_tokens_across_partial_writes(npmrc):
    sink = NpmrcSink(npmrc, [REG, REG2])
    sink.write({REG2: TOK2})
    sink.write({REG: TOK})
    assert npmrc.read_text() == block(
        f"{KEY}:_authToken={TOK}", f"//npm.example:8443/feed/:_authToken={TOK2}") + "\n"


def test_reloaded_registries_drop_the_lines_of_removed_ones(npmrc):
    npmrc.write_text("fund=false\n")
    sink = NpmrcSink(npmrc, [REG, REG2])
    sink.write({REG: TOK, REG2: TOK2})
    sink.set_registries([REG2])
    assert npmrc.read_text() == "fund=false\n" + block(f"//npm.example:8443/feed/:_authToken={TOK2}") + "\n"
    with pytest.raises(ConfigError):
        sink.write({REG: TOK})
    sink.set_registries([])
    assert npmrc.read_text() == "fund=false\n"


@pytest.mark.parametrize("token", [TOK + "\n", "a\rb", "a\0b", "x\nregistry=https://evil/", "", "a;b"])
def test_unsafe_tokens_are_refused(npmrc, token):
    npmrc.write_text("fund=false\n")
    with pytest.raises(ValueError) as info:
        NpmrcSink(npmrc, [REG]).write({REG: token})
    assert npmrc.read_text() == "fund=false\n"
    assert token.strip() == "" or token.strip() not in str(info.value)


def test_unknown_registry_is_refused(npmrc):
    with pytest.raises(ConfigError):
        NpmrcSink(npmrc, [REG]).write({"https://other.example/": TOK})


def test_remove_deletes_a_file_it_created(npmrc):
    sink = NpmrcSink(npmrc, [REG])
    sink.write({REG: TOK})
    sink.remove()
    assert not npmrc.exists()


def test_symlinked_npmrc_is_not_written_through(npmrc, tmp_path):
    target = tmp_path / "dotfiles-npmrc"
    target.write_text("fund=false\n")
    npmrc.symlink_to(target)
    with pytest.raises(ConfigError, match="symlink"):
        NpmrcSink(npmrc, [REG]).write({REG: TOK})
    assert target.read_text() == "fund=false\n"


# --- watching -----------------------------------------------------------------------------


@pytest.fixture
def watched(npmrc):
    npmrc.write_text("registry=https://registry.npmjs.org/\n")
    sink = NpmrcSink(npmrc, [REG])
    sink.write({REG: TOK})
    sink.watch()
    yield sink
    sink.stop()


def has_block(path: Path) -> bool:
    return path.exists() and block(f"{KEY}:_authToken={TOK}") in path.read_text()


def test_deleted_file_is_restored(watched, npmrc):
    npmrc.unlink()
    assert wait_for(lambda: has_block(npmrc))
    assert mode(npmrc) == 0o600


def test_rewritten_file_gets_the_block_back(watched, npmrc):
    npmrc.write_text("fund=false\n")
    assert wait_for(lambda: has_block(npmrc))
    assert npmrc.read_text().startswith("fund=false\n")


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm not installed")
def test_npm_config_set_keeps_its_change_and_we_keep_our_block(watched, npmrc, tmp_path):
    env = dict(os.environ, HOME=str(npmrc.parent), npm_config_cache=str(tmp_path / "npm-cache"),
               npm_config_update_notifier="false")
    subprocess.run(["npm", "config", "set", "fund", "false", "--userconfig", str(npmrc)],
                   env=env, check=True, capture_output=True, timeout=120)
    # npm writes the file without our markers (it drops comments), keeping the token line
    assert wait_for(lambda: has_block(npmrc) and "fund=false" in npmrc.read_text())
    text = npmrc.read_text()
    assert text.count(TOK) == 1 and "registry=https://registry.npmjs.org/" in text
    assert mode(npmrc) == 0o600
    watched.stop()
    watched.remove()
    assert TOK not in npmrc.read_text() and "fund=false" in npmrc.read_text()


def test_stop_ends_watching(watched, npmrc):
    watched.stop()
    watched.stop()
    npmrc.write_text("fund=false\n")
    assert npmrc.read_text() == "fund=false\n"
