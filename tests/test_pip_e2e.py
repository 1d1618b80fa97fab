"""Real pip installs from the emulator's private index, the credential from the daemon.

The venv's pip runs with ``--keyring-provider import`` and ``subprocess``; pip 23.3 (the last
pip that runs ``keyring get URL USERNAME``) runs from a venv of its own that holds no credhelper
at all: it only needs the ``keyring`` executable on PATH, as pip's docs recommend.
"""

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from credhelper.emulator import packages
from credhelper.frontends.pip_keyring import CredhelperKeyring
from harness import BIN, Workspace, wait_for
from hostile_urls import HOSTILE_URLS, ROUTE_URL

OLD_PIP = "23.3.2"  # as pinned in the Makefile (OLD_PIP_VERSION)
OLD_PIP_WHEEL = Path(__file__).resolve().parents[1] / ".tools" / "pip" / f"pip-{OLD_PIP}-py3-none-any.whl"


@pytest.fixture(scope="session")
def old_pip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with pip 23.3.2 (from the wheel `make test` keeps in .tools/) and nothing else."""
    if not OLD_PIP_WHEEL.exists():
        pytest.skip("pip 23 is fetched by `make test` (the .tools/pip target); run it through make")
    venv = tmp_path_factory.mktemp("old-pip") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # pip runs from its own wheel to install itself: no index, no network.
    subprocess.run([str(python), str(OLD_PIP_WHEEL / "pip"), "install", "-q", "--no-index",
                    "--disable-pip-version-check", str(OLD_PIP_WHEEL)],
                   check=True, timeout=300, stdin=subprocess.DEVNULL)
    return python


@pytest.fixture(scope="module")
def feed(module_ws: Workspace) -> Workspace:
    """The shared workspace: one route for the feed host, daemon running."""
    module_ws.default_config()
    module_ws.start_daemon()
    return module_ws


def pip_env(ws: Workspace) -> Dict[str, str]:
    """The workspace env for pip, with the venv's ``keyring`` on PATH where pip will run it.

    pip's subprocess provider skips a ``keyring`` in pip's own scripts directory (it expects one
    installed apart, as pipx does), so a link to ours goes into a directory of its own.
    Requests lets the CA variables beat pip's ``--cert``: they go.
    """
    tools = ws.root / "keyring-bin"
    if not tools.exists():
        tools.mkdir()
        (tools / "keyring").symlink_to(BIN / "keyring")
    env = {k: v for k, v in ws.env.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    env["PATH"] = f"{tools}{os.pathsep}{env['PATH']}"
    return env


def pip_install(ws: Workspace, project: str, *args: str, python: Optional[Path] = None,
                index: Optional[str] = None, check: bool = True) -> subprocess.CompletedProcess:
    """``pip install --no-deps --target`` one project into a fresh directory."""
    target = ws.root / f"site-{len(list(ws.root.glob('site-*')))}"
    cmd: List[str] = [str(python or sys.executable), "-m", "pip", "install", "--no-deps",
                      "--no-cache-dir", "--target", str(target),
                      "--index-url", index or ws.em.pypi_url, *args, project]
    proc = ws.run(cmd, check=check, env=pip_env(ws), stdin=subprocess.DEVNULL)
    if check:
        assert (target / packages.module_name(project) / "__init__.py").exists()
    return proc


def pip_version() -> Tuple[int, ...]:
    """The version of the pip this suite runs with."""
    import pip

    return tuple(int(part) for part in pip.__version__.split(".")[:2])


def current_token(ws: Workspace) -> str:
    """The token the daemon hands out for the index right now (never print it)."""
    return ws.client().get(ws.em.pypi_url)["token"]


def assert_no_token(ws: Workspace, *texts: str) -> None:
    """No token the daemon holds appears in ``texts`` or in the daemon's logs."""
    token = current_token(ws)
    leaked = [i for i, text in enumerate(texts + (ws.logs(),)) if token in text]
    assert leaked == [], "the token appears in output or logs"


def served(ws: Workspace, project: str) -> List[Dict[str, object]]:
    """Feed log entries for a project's index page and files."""
    name = packages.normalize(project)
    return [e for e in ws.em.feeds.log
            if f"/simple/{name}/" in str(e["path"]) or f"/files/{name}/" in str(e["path"])]


@pytest.mark.parametrize("provider", ["import", "subprocess"])
def test_pip_installs_a_private_package(feed: Workspace, provider: str) -> None:
    project = f"private-{provider}"
    feed.em.feeds.add_wheel(project, "1.0.0")
    index = None
    if provider == "subprocess" and pip_version() < (26, 2):
        # pips before 26.2 (the newest pip for Python 3.9 among them) run the keyring command
        # only for an index URL that names a user
        index = feed.em.pypi_url.replace("https://", "https://entra@")
    proc = pip_install(feed, project, "--keyring-provider", provider, index=index)
    log = served(feed, project)
    assert [e["status"] for e in log if e["auth"] == "basic"].count(200) >= 2  # page + wheel
    assert "Traceback" not in proc.stderr
    assert_no_token(feed, proc.stdout, proc.stderr)


def test_pip_23_runs_the_keyring_command_line(feed: Workspace, old_pip: Path) -> None:
    version = feed.run([str(old_pip), "-m", "pip", "--version"]).stdout
    assert version.startswith(f"pip {OLD_PIP} ")
    feed.em.feeds.add_wheel("private-old-pip", "1.0.0")
    # pip 23 asks `keyring get URL USERNAME` only when it has a user name: the URL carries one
    index = feed.em.pypi_url.replace("https://", "https://entra@")
    proc = pip_install(feed, "private-old-pip", "--keyring-provider", "subprocess",
                       python=old_pip, index=index)
    assert any(e["status"] == 200 and e["auth"] == "basic"
               for e in served(feed, "private-old-pip"))
    assert_no_token(feed, proc.stdout, proc.stderr)


def test_keyring_backend_never_answers_hostile_urls(feed: Workspace, monkeypatch) -> None:
    """Through the real daemon: a route for the emulator host, hostile URLs aimed at it."""
    ws = feed
    host = "localhost"  # the feed's host name; the route uses the default port like ROUTE_URL
    route = ROUTE_URL.replace("dev.azure.com", host)
    ws.write_config(ws.federated_account(), [
        {"url": f"{ws.em.feed_base}/", "account": "workspace", "preset": "azure-devops"},
        {"url": route, "account": "workspace", "preset": "azure-devops"}])
    ws.client().call("reload")
    for key in ("CREDHELPER_SOCKET", "XDG_CONFIG_HOME", "HOME"):
        monkeypatch.setenv(key, ws.env[key])
    ring = CredhelperKeyring()
    assert ring.get_password(route + "pypi/simple/", "x") is not None  # the route itself works
    hostile = [url.replace("dev.azure.com", host).replace("DEV.AZURE.COM", host.upper())
               for url in HOSTILE_URLS]
    hostile += [ws.em.pypi_url.replace("https://", "http://"), "http://" + ws.em.feed_base[8:],
                ws.em.feed_base[8:] + "/pypi/simple/"]
    answered = [url for url in hostile if ring.get_credential(url, None) is not None
                or ring.get_password(url, "entra") is not None]
    assert answered == []


def test_keyring_command_line_refuses_http_through_the_daemon(feed: Workspace) -> None:
    http = feed.em.pypi_url.replace("https://", "http://")
    for args in (["--mode=creds", "--output=json", "get", http], ["get", http, "entra"]):
        proc = feed.run([str(BIN / "keyring"), *args], check=False, stdin=subprocess.DEVNULL)
        assert (proc.returncode, proc.stdout) == (1, "")
        assert "Traceback" not in proc.stderr


def test_without_the_daemon_pip_fails_as_on_any_401(ws: Workspace) -> None:
    ws.default_config()
    proc = pip_install(ws, "hello-private", "--keyring-provider", "import", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "No matching distribution found for hello-private" in output
    assert "Traceback" not in output
    ours = [line for line in output.splitlines() if "credhelper" in line]
    assert len(ours) == 1 and ours[0].startswith("credhelper: ") and "not running" in ours[0]
    # pip names the 401 at -vv, beside its own resolver traceback; no frame of ours is in it
    proc = pip_install(ws, "hello-private", "-vv", "--keyring-provider", "import", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "/pypi/simple/hello-private/: 401 Client Error: Unauthorized" in output
    assert "credhelper/" not in output.replace(str(ws.root), "")


def test_configure_pip_then_plain_pip_install(ws: Workspace) -> None:
    ws.default_config()
    out = ws.credhelper("configure", "pip").stdout
    assert "pip: the daemon keeps" in out
    ws.start_daemon()
    assert wait_for(lambda: (ws.home / ".netrc").exists())
    proc = pip_install(ws, "hello-private")
    assert any(e["status"] == 200 and e["auth"] == "basic" for e in served(ws, "hello-private"))
    assert_no_token(ws, proc.stdout, proc.stderr)
    assert "get" in (ws.state_dir / "audit.log").read_text()
