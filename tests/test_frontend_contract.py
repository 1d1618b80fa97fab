"""One contract, both front-ends: git's credential helper and pip's keyring backend.

Each front-end is driven the way its tool drives it - ``git credential fill`` with
``credential.helper=entra``, and keyring's command line as pip's ``subprocess`` provider runs
it - against the real daemon, and must behave alike: the daemon's token for a routed URL,
nothing (and no noise) for anyone else's, one line and no traceback when the daemon is away.
A new front-end is one more adapter in ``FRONTENDS``.
"""

import json
from typing import Callable, Dict, Iterator, Optional, Tuple

import pytest

from harness import BIN, Workspace

Answer = Tuple[Optional[Tuple[str, str]], str]  # ((username, secret) or None, stderr)


def git_fill(ws: Workspace, url: str, env: Dict[str, str]) -> Answer:
    """``git credential fill`` for ``url`` with our helper alone."""
    scheme, _, rest = url.partition("://")
    host, _, path = rest.partition("/")
    proc = ws.run(["git", "-c", "credential.helper=", "-c", "credential.helper=entra",
                   "-c", "credential.useHttpPath=true", "credential", "fill"],
                  check=False, env=env, input=f"protocol={scheme}\nhost={host}\npath={path}\n\n")
    fields = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    if proc.returncode != 0 or "password" not in fields:
        return None, proc.stderr
    return (fields["username"], fields["password"]), proc.stderr


def keyring_get(ws: Workspace, url: str, env: Dict[str, str]) -> Answer:
    """keyring's command line as pip's subprocess provider runs it (pip >= 23.x, no username)."""
    proc = ws.run([str(BIN / "keyring"), "--mode=creds", "--output=json", "get", url],
                  check=False, env=env)
    if proc.returncode != 0 or not proc.stdout.strip():
        return None, proc.stderr
    reply = json.loads(proc.stdout)
    return (reply["username"], reply["password"]), proc.stderr


FRONTENDS: Dict[str, Callable[[Workspace, str, Dict[str, str]], Answer]] = {
    "git": git_fill, "pip": keyring_get,
}


@pytest.fixture(scope="module")
def feed(module_ws: Workspace) -> Workspace:
    module_ws.default_config()
    module_ws.start_daemon()
    return module_ws


@pytest.fixture(params=sorted(FRONTENDS))
def ask(request: pytest.FixtureRequest, feed: Workspace) -> Iterator[Callable[..., Answer]]:
    frontend = FRONTENDS[request.param]
    yield lambda url, env=None: frontend(feed, url, env or feed.env)


def _ours(stderr: str) -> list:
    return [line for line in stderr.splitlines() if line.startswith("credhelper:")]


def test_a_routed_url_gets_the_daemons_token(ask, feed: Workspace) -> None:
    url = f"{feed.em.feed_base}/git/demo.git"
    answer, stderr = ask(url)
    held = feed.client().get(url)
    assert answer == (held["username"], held["token"])
    assert "Traceback" not in stderr and not _ours(stderr)


@pytest.mark.parametrize("url", [
    "https://elsewhere.example/repo.git",
    "https://dev.azure.com.evil.example/contoso/repo",
])
def test_anyone_elses_url_gets_nothing_and_no_noise(ask, url: str) -> None:
    answer, stderr = ask(url)
    assert answer is None
    assert not _ours(stderr) and "Traceback" not in stderr


def test_a_lookalike_of_our_host_gets_nothing(ask, feed: Workspace) -> None:
    host = feed.em.feed_base.split("://", 1)[1].split("/", 1)[0]
    answer, _ = ask(f"https://{host}.evil.example/git/demo.git")
    assert answer is None


def test_without_the_daemon_one_line_and_nothing_else(ask, feed: Workspace) -> None:
    env = dict(feed.env, CREDHELPER_SOCKET=str(feed.root / "nobody-here.sock"))
    answer, stderr = ask(f"{feed.em.feed_base}/git/demo.git", env)
    assert answer is None
    assert "Traceback" not in stderr
    assert len(_ours(stderr)) == 1 and "not running" in _ours(stderr)[0], stderr
