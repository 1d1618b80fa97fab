"""git-credential-entra: the real executable and real git against a fake daemon."""

import os
import subprocess
from io import BytesIO, StringIO
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest

from credhelper.client import Client
from credhelper.errors import AuthFailed, NotSignedIn
from credhelper.frontends import git as gitfront
from fakedaemon import FakeDaemon

BIN = Path(sys.executable).parent
HELPER = BIN / "git-credential-entra"
TOKEN = "eyJ0eXAiOiJKV1QifQ.tok-git-1"
EXPIRES = 1795000000
ORG = "https://dev.azure.com/contoso/"
SIGN_IN = "account 'work' needs sign-in: run credhelper login work"


@pytest.fixture
def daemon():
    with FakeDaemon({
        ORG: ("entra", TOKEN, EXPIRES),
        "https://git.example:8443/": ("svc", "tok-port", EXPIRES + 5),
        "https://split.example/a/": ("alice", "tok-a", EXPIRES),
        "https://split.example/b/": ("bob", "tok-b", EXPIRES),
        "https://nologin.example/": NotSignedIn(SIGN_IN),
        "https://broken.example/": AuthFailed("account 'work': AADSTS700016 application not found"),
        "https://evil-newline.example/": ("entra", "tok\nhost=evil", EXPIRES),
    }) as fake:
        yield fake


@pytest.fixture
def env(tmp_path: Path, daemon: FakeDaemon) -> Dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "CREDHELPER_SOCKET": str(daemon.socket_path),
        "GIT_CONFIG_GLOBAL": str(home / "gitconfig"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "LANG": "C",
    }


def helper(env: Dict[str, str], action: str, stdin: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([str(HELPER), action], input=stdin, env=env, capture_output=True,
                          timeout=60)


def lines(text: bytes) -> Dict[str, str]:
    return dict(line.split("=", 1) for line in text.decode().splitlines())


# --- the executable, protocol level -------------------------------------------------------


def test_get_answers_username_password_and_expiry(env, daemon):
    result = helper(env, "get", b"protocol=https\nhost=dev.azure.com\npath=contoso/proj/_git/repo\n\n")
    assert result.returncode == 0 and result.stderr == b""
    assert result.stdout.decode() == (
        f"username=entra\npassword={TOKEN}\npassword_expiry_utc={EXPIRES}\n")
    assert daemon.ops("get") == [{"v": 1, "op": "get", "for": "git",
                                  "url": "https://dev.azure.com/contoso/proj/_git/repo"}]


def test_host_with_port_and_crlf_input(env, daemon):
    result = helper(env, "get", b"protocol=https\r\nhost=git.example:8443\r\npath=x.git\r\n\r\n")
    assert lines(result.stdout)["password"] == "tok-port"
    assert daemon.ops("get")[0]["url"] == "https://git.example:8443/x.git"


def test_pathless_request_asks_for_the_host(env, daemon):
    result = helper(env, "get", b"protocol=https\nhost=dev.azure.com\n\n")
    assert lines(result.stdout)["password"] == TOKEN
    assert daemon.ops("get")[0]["url"] == "https://dev.azure.com/"


def test_url_attribute_stands_for_its_parts(env, daemon):
    result = helper(env, "get", b"url=https://dev.azure.com/contoso/proj/_git/my%20repo\n\n")
    assert lines(result.stdout)["password"] == TOKEN
    assert daemon.ops("get")[0]["url"] == "https://dev.azure.com/contoso/proj/_git/my%20repo"


def test_authtype_capability_gets_a_bearer_credential(env, daemon):
    stdin = (b"capability[]=authtype\ncapability[]=state\nprotocol=https\nhost=dev.azure.com\n"
             b"path=contoso/r\nwwwauth[]=Bearer authorization_uri=x\n\n")
    result = helper(env, "get", stdin)
    assert result.stdout.decode() == (
        "capability[]=authtype\nauthtype=Bearer\n"
        f"credential={TOKEN}\nephemeral=1\npassword_expiry_utc={EXPIRES}\n")


@pytest.mark.parametrize("stdin", [
    b"protocol=https\nhost=other.example\npath=r.git\n\n",     # no route
    b"protocol=https\nhost=dev.azure.com:444\n\n",             # port differs
])
def test_not_our_url_prints_nothing(env, daemon, stdin):
    result = helper(env, "get", stdin)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    assert len(daemon.ops("get")) == 1


@pytest.mark.parametrize("stdin", [
    b"protocol=http\nhost=dev.azure.com\npath=contoso/r\n\n",
    b"protocol=ssh\nhost=dev.azure.com\n\n",
    b"protocol=https\nhost=dev.azure.com@evil.example\npath=contoso/r\n\n",
    b"protocol=https\nhost=evil.example/dev.azure.com\n\n",
    b"protocol=https\nhost=\n\n",
    b"host=dev.azure.com\n\n",
])
def test_non_https_or_odd_host_never_reaches_the_daemon(env, daemon, stdin):
    result = helper(env, "get", stdin)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    assert daemon.requests == []


def test_ambiguous_host_points_to_configure_git(env, daemon):
    result = helper(env, "get", b"protocol=https\nhost=split.example\n\n")
    assert result.returncode == 0 and result.stdout == b""
    assert result.stderr.decode().count("\n") == 1
    assert "credhelper configure git" in result.stderr.decode()


def test_not_signed_in_says_so_once_and_quits(env, daemon):
    result = helper(env, "get", b"protocol=https\nhost=nologin.example\npath=r\n\n")
    assert result.returncode == 0
    assert result.stdout == b"quit=1\n"
    assert result.stderr.decode() == f"credhelper: {SIGN_IN}\n"


def test_auth_failure_quits(env, daemon):
    result = helper(env, "get", b"protocol=https\nhost=broken.example\npath=r\n\n")
    assert result.stdout == b"quit=1\n"
    assert "AADSTS700016" in result.stderr.decode() and result.stderr.decode().count("\n") == 1


def test_daemon_unavailable_lets_git_go_on(env, tmp_path):
    env = dict(env, CREDHELPER_SOCKET=str(tmp_path / "nothing.sock"))
    result = helper(env, "get", b"protocol=https\nhost=dev.azure.com\npath=contoso/r\n\n")
    assert (result.returncode, result.stdout) == (0, b"")
    assert "credhelper start" in result.stderr.decode()
    assert result.stderr.decode().count("\n") == 1


def test_token_with_newline_is_never_passed_on(env, daemon):
    result = helper(env, "get", b"protocol=https\nhost=evil-newline.example\npath=r\n\n")
    assert result.stdout == b""
    assert b"tok" not in result.stderr and b"evil" not in result.stderr


@pytest.mark.parametrize("action", ["store", "frobnicate"])
def test_store_and_unknown_actions_are_ignored(env, daemon, action):
    stdin = f"protocol=https\nhost=dev.azure.com\npath=c/r\nusername=entra\npassword={TOKEN}\n\n"
    result = helper(env, action, stdin.encode())
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    assert daemon.requests == []


def test_absurd_input_is_refused_quietly(env, daemon):
    stdin = b"protocol=https\nhost=dev.azure.com\npath=" + b"a" * (70 * 1024) + b"\n\n"
    result = helper(env, "get", stdin)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    assert daemon.requests == []


def test_erase_of_our_token_invalidates_it(env, daemon):
    stdin = f"protocol=https\nhost=dev.azure.com\npath=contoso/r\nusername=entra\npassword={TOKEN}\n\n"
    result = helper(env, "erase", stdin.encode())
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    assert [(r["url"], r["token"]) for r in daemon.ops("invalidate")] == [
        ("https://dev.azure.com/contoso/r", TOKEN)]


def test_erase_of_a_bearer_credential_invalidates_it(env, daemon):
    stdin = f"protocol=https\nhost=dev.azure.com\npath=contoso/r\nauthtype=Bearer\ncredential={TOKEN}\n\n"
    helper(env, "erase", stdin.encode())
    assert len(daemon.ops("invalidate")) == 1


@pytest.mark.parametrize("host", ["dev.azure.com", "other.example"])
def test_erase_of_someone_elses_password_stays_local(env, daemon, host):
    secret = "ghp_someone-elses-pat"
    stdin = f"protocol=https\nhost={host}\npath=contoso/r\nusername=me\npassword={secret}\n\n"
    result = helper(env, "erase", stdin.encode())
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    assert daemon.ops("invalidate") == []
    assert secret not in repr(daemon.requests)


def test_no_action_prints_usage():
    result = subprocess.run([str(HELPER)], capture_output=True, timeout=60)
    assert result.returncode == 2 and b"usage" in result.stderr and result.stdout == b""


def test_launcher_answers_without_site_socket_py_or_json(env, daemon):
    """What the configured wrapper runs: python -I -S git_main.py get, on the whole get path."""
    launcher = Path(gitfront.__file__).with_name("git_main.py")
    # report what was imported once the helper has answered (main() ends in sys.exit)
    spy = ("import atexit, sys\n"
           "atexit.register(lambda: sys.stderr.write(' '.join(sorted(sys.modules))))\n"
           f"path = {str(launcher)!r}\n"
           "exec(compile(open(path).read(), path, 'exec'), {'__name__': '__main__', '__file__': path})\n")
    result = subprocess.run([sys.executable, "-I", "-S", "-c", spy, "get"], env=env,
                            input=b"protocol=https\nhost=dev.azure.com\npath=contoso/x\n",
                            capture_output=True, timeout=60)
    assert lines(result.stdout)["password"] == TOKEN
    loaded = set(result.stderr.decode().split())
    assert "credhelper.client" in loaded and "site" not in loaded
    # json, socket.py (selectors, enum), re and typing; os (posixpath, _collections_abc), stat,
    # struct and __future__: the milliseconds the helper no longer pays
    assert loaded & {"json", "socket", "selectors", "enum", "re", "typing", "os", "posixpath",
                     "_collections_abc", "stat", "struct", "__future__"} == set()


# --- parsing, in process ------------------------------------------------------------------


def test_parse_follows_git_rules():
    scalars, lists = gitfront.parse(
        b"capability[]=authtype\ncapability[]=\ncapability[]=state\nurl=https://u@h.example:1/p%2Fq\n"
        b"host=h2.example\nnonsense\nfuture=1\n\nprotocol=ignored-after-blank\n")
    assert lists == {"capability": ["state"]}
    assert scalars == {"protocol": "https", "host": "h2.example", "path": "p/q", "future": "1"}


@pytest.mark.parametrize("url", [
    "https://h.example/a\tb", " https://h.example/", "https://h.example/ ", "https://h.ex\tample/",
    "https://h.example\uff0fevil/", "https://h.example\uff20evil.example/",
])
def test_url_attribute_urlsplit_would_launder_stands_for_nothing(url):
    scalars, _ = gitfront.parse(f"protocol=https\nhost=h.example\nurl={url}\n".encode())
    assert gitfront.target_url(scalars) is None


def test_url_attribute_keeps_bytes_that_are_not_utf8():
    scalars, _ = gitfront.parse(b"url=https://h.example/a%ffb\n")
    assert gitfront.target_url(scalars) == "https://h.example/a%FFb"  # the daemon refuses it


@pytest.mark.parametrize("scalars,url", [
    ({"protocol": "https", "host": "h.example"}, "https://h.example/"),
    ({"protocol": "HTTPS", "host": "h.example:444", "path": "a b/c"}, "https://h.example:444/a%20b/c"),
    ({"protocol": "https", "host": "[::1]:8443", "path": "r"}, "https://[::1]:8443/r"),
    ({"protocol": "https", "host": "h.example", "path": "a\nb"}, "https://h.example/a%0Ab"),
    ({"protocol": "https", "host": "h.example", "path": "caf\udcc3\udca9"}, "https://h.example/caf%C3%A9"),
    ({"protocol": "https", "host": "h.example\\evil"}, None),
    ({"protocol": "http", "host": "h.example"}, None),
])
def test_target_url(scalars: Dict[str, str], url: Optional[str]):
    assert gitfront.target_url(scalars) == url


# --- real git -----------------------------------------------------------------------------


def git(env: Dict[str, str], *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], input=stdin, env=env, capture_output=True, timeout=60)


OTHER_HELPER = "!f() { cat >/dev/null; echo username=other; echo password=other-secret; }; f"


@pytest.fixture
def gitenv(env):
    for key, value in [("credential.helper", "entra"), ("credential.useHttpPath", "true")]:
        git(env, "config", "--global", "--add", key, value).check_returncode()
    return env


def test_git_credential_fill_uses_our_answer(gitenv, daemon):
    result = git(gitenv, "credential", "fill",
                 stdin=b"url=https://dev.azure.com/contoso/proj/_git/repo\n\n")
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout)["username"] == "entra"
    assert lines(result.stdout)["password"] == TOKEN
    assert daemon.ops("get")[0]["url"] == "https://dev.azure.com/contoso/proj/_git/repo"


def test_git_asks_the_next_helper_for_hosts_we_do_not_serve(gitenv):
    git(gitenv, "config", "--global", "--add", "credential.helper", OTHER_HELPER)
    result = git(gitenv, "credential", "fill", stdin=b"url=https://github.com/o/r\n\n")
    assert result.returncode == 0 and lines(result.stdout)["password"] == "other-secret"
    assert result.stderr == b""


def test_git_stops_asking_when_sign_in_is_needed(gitenv):
    git(gitenv, "config", "--global", "--add", "credential.helper", OTHER_HELPER)
    result = git(gitenv, "credential", "fill", stdin=b"url=https://nologin.example/r\n\n")
    assert result.returncode != 0
    assert SIGN_IN in result.stderr.decode()
    assert b"other-secret" not in result.stdout


def test_git_credential_reject_invalidates_our_token(gitenv, daemon):
    stdin = f"url=https://dev.azure.com/contoso/r\nusername=entra\npassword={TOKEN}\n\n"
    git(gitenv, "credential", "reject", stdin=stdin.encode()).check_returncode()
    assert [r["token"] for r in daemon.ops("invalidate")] == [TOKEN]


def test_handle_is_pure_and_takes_its_client(daemon):
    stdout, stderr = BytesIO(), StringIO()
    code = gitfront.handle("get", BytesIO(b"protocol=https\nhost=dev.azure.com\npath=contoso/r\n"),
                           stdout, stderr, Client(socket_path=daemon.socket_path))
    assert code == 0 and stderr.getvalue() == ""
    assert lines(stdout.getvalue())["password"] == TOKEN
