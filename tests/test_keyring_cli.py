"""`credhelper-keyring`: the keyring command line pip's and uv's subprocess provider runs, as a
real process against a real daemon, and pip in a fresh venv using it with no netrc at all.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import BIN, Workspace
from pytools import fresh_venv, installed, no_token_in, pip_wheels, tool_env
from signin import person_config

KEYRING = BIN / "credhelper-keyring"


@pytest.fixture(scope="module")
def feed(module_ws: Workspace) -> Workspace:
    module_ws.default_config()
    module_ws.start_daemon()
    return module_ws


def keyring(ws: Workspace, *args: str) -> subprocess.CompletedProcess:
    return ws.run([str(KEYRING), *args], check=False, stdin=subprocess.DEVNULL)


def test_creds_json_and_password_forms(feed: Workspace) -> None:
    token = feed.client().get(feed.em.pypi_url)["token"]
    creds = keyring(feed, "--mode=creds", "--output=json", "get", feed.em.pypi_url)
    assert creds.returncode == 0 and creds.stderr == ""
    assert json.loads(creds.stdout) == {"username": "workspace", "password": token}
    plain = keyring(feed, "get", feed.em.pypi_url, "anyone")
    assert (plain.returncode, plain.stdout) == (0, token + "\n")
    netloc = keyring(feed, "--mode", "creds", "--output", "json", "get", feed.em.feed_base[8:])
    assert json.loads(netloc.stdout)["password"] == token  # pip's fallback: host[:port] alone


@pytest.mark.parametrize("service", [
    "http://{host}/pypi/simple/", "https://evil.example/pypi/simple/", "https://{host}@evil.example/",
    "{host}/pypi", "", "ftp://{host}/"])
def test_nothing_for_what_is_not_routed(feed: Workspace, service: str) -> None:
    proc = keyring(feed, "--mode=creds", "--output=json", "get",
                   service.format(host=feed.em.feed_base[8:]))
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", "")


def test_stores_nothing_and_explains_misuse(feed: Workspace) -> None:
    stored = keyring(feed, "set", feed.em.pypi_url, "me")
    assert stored.returncode == 1 and "stores nothing" in stored.stderr
    for args in ([], ["get"], ["get", feed.em.pypi_url], ["--mode=bogus", "get", "x"], ["--what"]):
        proc = keyring(feed, *args)
        assert (proc.returncode, proc.stdout) == (2, ""), args
        assert proc.stderr.startswith("usage: credhelper-keyring"), args


def test_answers_without_json_re_socket_py_or_typing(feed: Workspace) -> None:
    """pip runs the command once per index URL: what it imports is paid on every install."""
    spy = ("import atexit, sys\n"
           "atexit.register(lambda: sys.stderr.write(' '.join(sorted(sys.modules))))\n"
           "from credhelper.frontends.keyring_cli import main\n"
           "main()\n")
    proc = subprocess.run([sys.executable, "-I", "-c", spy, "--mode=creds", "--output=json", "get",
                           feed.em.pypi_url], env=feed.env, capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0 and json.loads(proc.stdout)["username"] == "workspace"
    loaded = set(proc.stderr.split())
    assert "credhelper.client" in loaded
    assert loaded & {"json", "re", "socket", "selectors", "enum", "typing"} == set()


def test_pip_subprocess_provider_in_a_fresh_venv_without_netrc(feed: Workspace,
                                                               tmp_path: Path) -> None:
    """For a host netrc cannot serve: pip (26.2+) asks the command by URL, path and all."""
    ws = feed
    assert not (ws.home / ".netrc").exists()
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "keyring").symlink_to(KEYRING)
    python = fresh_venv(tmp_path / "venv", pip_wheels()[-1])
    ws.em.feeds.add_wheel("via-keyring-cli", "1.0.0")
    env = tool_env(ws, PATH=f"{tools}:{ws.env['PATH']}")
    proc = ws.run([str(python), "-m", "pip", "install", "--no-input", "--keyring-provider",
                   "subprocess", "--no-deps", "--target", str(tmp_path / "site"), "--index-url",
                   ws.em.pypi_url, "via-keyring-cli"], env=env, stdin=subprocess.DEVNULL,
                  cwd=str(tmp_path))
    assert installed(tmp_path / "site", "via-keyring-cli")
    assert no_token_in(ws, proc.stdout, proc.stderr)
    assert '"tool":"keyring","url":"https://localhost' in (ws.state_dir / "audit.log").read_text()


def test_before_sign_in_one_line_names_the_login(ws: Workspace) -> None:
    person_config(ws)
    ws.start_daemon()
    proc = keyring(ws, "--mode=creds", "--output=json", "get", ws.em.pypi_url)
    assert (proc.returncode, proc.stdout) == (1, "")
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("credhelper: ") and "credhelper login work" in lines[0]
