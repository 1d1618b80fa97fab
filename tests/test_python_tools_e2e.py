"""pip, uv, poetry, twine and `uv publish` against the emulator's private index, as a new user runs
them after `credhelper configure pip|uv|poetry`: no keyring setting, no user name in any URL, no
credhelper inside the tool's venv. They all find the token in the netrc block the daemon keeps.
"""

import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from credhelper.emulator import packages
from harness import Workspace, wait_for
from pytools import (fresh_venv, installed, no_token_in, pip_wheels, poetry, publishable,
                     tool_env, twine, uv)
from signin import person_config

pytestmark = pytest.mark.timeout(300)


def netrc_text(ws: Workspace) -> str:
    path = ws.home / ".netrc"
    return path.read_text() if path.exists() else ""


def has_line(ws: Workspace) -> bool:
    """Whether the daemon's block holds a line for the feed host."""
    return "machine localhost login " in netrc_text(ws)


def served(ws: Workspace, project: str, since: int = 0) -> List[Dict[str, object]]:
    """Feed log entries (from index ``since``) for one project's index page and files."""
    name = packages.normalize(project)
    return [e for e in ws.em.feeds.log[since:]
            if f"/simple/{name}/" in str(e["path"]) or f"/files/{name}/" in str(e["path"])]


def authorized(ws: Workspace, project: str, since: int = 0) -> bool:
    """The feed served the project's page and a file to a request carrying a valid token."""
    ok = [e["path"] for e in served(ws, project, since) if e["status"] == 200 and e["auth"] == "basic"]
    return any("/simple/" in str(p) for p in ok) and any("/files/" in str(p) for p in ok)


@pytest.fixture(scope="module")
def feed(module_ws: Workspace) -> Workspace:
    """pip, uv and poetry configured, the daemon running and its netrc block written."""
    ws = module_ws
    ws.default_config()
    for tool in ("pip", "uv", "poetry"):
        assert f"{tool}: the daemon keeps" in ws.credhelper("configure", tool).stdout
    ws.start_daemon()
    assert wait_for(lambda: has_line(ws)), ws.daemon_output()
    return ws


@pytest.fixture(scope="module", params=pip_wheels(), ids=lambda p: p.name.split("-")[1])
def venv_python(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_venv(tmp_path_factory.mktemp("venv") / "venv", request.param)


# pip -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["default", "no-input"])
def test_pip_in_a_venv_without_credhelper(feed: Workspace, venv_python: Path, mode: str) -> None:
    ws = feed
    for module in ("credhelper", "keyring"):
        nothing = ws.run([str(venv_python), "-c", f"import {module}"], check=False, cwd=str(ws.root))
        assert f"No module named '{module}'" in nothing.stderr
    version = ws.run([str(venv_python), "-m", "pip", "--version"]).stdout.split()[1]
    project = f"fresh-{version.replace('.', '-')}-{mode}"
    ws.em.feeds.add_wheel(project, "1.0.0")
    site = ws.root / f"site-{project}"
    extra = ["--no-input"] if mode == "no-input" else []
    proc = ws.run([str(venv_python), "-m", "pip", "install", "--no-deps", "--no-cache-dir",
                   "--target", str(site), "--index-url", ws.em.pypi_url, *extra, project],
                  env=tool_env(ws), stdin=subprocess.DEVNULL, cwd=str(ws.root))
    assert installed(site, project)
    assert authorized(ws, project)
    assert "Traceback" not in proc.stderr and no_token_in(ws, proc.stdout, proc.stderr)


def test_pip_in_credhelpers_own_venv(feed: Workspace) -> None:
    ws = feed
    ws.em.feeds.add_wheel("own-venv", "1.0.0")
    site = ws.root / "site-own"
    proc = ws.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-cache-dir",
                   "--target", str(site), "--index-url", ws.em.pypi_url, "own-venv"],
                  env=tool_env(ws, PIP_NO_INPUT="1"), stdin=subprocess.DEVNULL)
    assert installed(site, "own-venv") and authorized(ws, "own-venv")
    assert no_token_in(ws, proc.stdout, proc.stderr)


# uv ------------------------------------------------------------------------------------------

def test_uv_pip_install(feed: Workspace) -> None:
    ws = feed
    ws.em.feeds.add_wheel("uv-pip-pkg", "1.0.0")
    site = ws.root / "site-uv"
    proc = ws.run([str(uv()), "pip", "install", "--target", str(site), "--index-url",
                   ws.em.pypi_url, "uv-pip-pkg"], env=tool_env(ws), stdin=subprocess.DEVNULL)
    assert installed(site, "uv-pip-pkg") and authorized(ws, "uv-pip-pkg")
    assert no_token_in(ws, proc.stdout, proc.stderr)


def test_uv_with_authenticate_always_sends_the_token_up_front(feed: Workspace) -> None:
    """Without it uv asks each URL anonymously first (a 401 each); with it, never."""
    ws = feed
    ws.em.feeds.add_wheel("uv-always-pkg", "1.0.0")
    config = ws.root / "uv-always.toml"
    config.write_text(f'[[index]]\nname = "private"\nurl = "{ws.em.pypi_url}"\ndefault = true\n'
                      'authenticate = "always"\n')
    for name, source in (("anonymous-first", ["--index-url", ws.em.pypi_url]),
                         ("always", ["--config-file", str(config)])):
        since = len(ws.em.feeds.log)
        ws.run([str(uv()), "pip", "install", "--no-cache", "--target", str(ws.root / name),
                *source, "uv-always-pkg"], env=tool_env(ws), stdin=subprocess.DEVNULL)
        assert installed(ws.root / name, "uv-always-pkg")
        refused = [e for e in served(ws, "uv-always-pkg", since) if e["status"] == 401]
        assert bool(refused) == (name == "anonymous-first"), name


def project_dir(ws: Workspace, name: str, body: str) -> Path:
    where = ws.root / name
    where.mkdir()
    (where / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n'
        f"dependencies = []\n\n{body}")
    return where


def test_uv_add_lock_sync_with_a_plain_index_url(feed: Workspace) -> None:
    ws = feed
    ws.em.feeds.add_wheel("uv-proj-dep", "1.0.0")
    # no user name in the URL, no `authenticate` setting: uv asks no keyring here
    where = project_dir(ws, "uvproj", f'[[tool.uv.index]]\nname = "private"\n'
                                      f'url = "{ws.em.pypi_url}"\ndefault = true\n')
    env = tool_env(ws)
    outputs = []
    # each step goes to the index: lock re-resolves, sync fills a venv that add's was replaced by
    for args in (["add", "uv-proj-dep"], ["lock", "--upgrade"], ["sync"]):
        if args[0] == "sync":
            shutil.rmtree(where / ".venv")
        since = len(ws.em.feeds.log)
        proc = ws.run([str(uv()), *args, "--no-cache"], env=env, cwd=str(where),
                      stdin=subprocess.DEVNULL)
        outputs += [proc.stdout, proc.stderr]
        wanted = "/files/" if args[0] == "sync" else "/simple/"
        assert any(e["status"] == 200 and e["auth"] == "basic" and wanted in str(e["path"])
                   for e in served(ws, "uv-proj-dep", since)), args
    lock = (where / "uv.lock").read_text()
    assert "uv-proj-dep" in lock and ws.em.pypi_url in lock
    assert (where / ".venv" / "lib").exists()
    found = list((where / ".venv").glob("lib/python*/site-packages/uv_proj_dep/__init__.py"))
    assert found, "uv sync did not install the dependency"
    assert no_token_in(ws, lock, *outputs)


def test_doctor_names_a_uv_index_asked_anonymously_first_and_its_fix_works(feed: Workspace) -> None:
    ws = feed
    ws.em.feeds.add_wheel("uv-doctor-dep", "1.0.0")
    private = f'[[tool.uv.index]]\nname = "private"\nurl = "{ws.em.pypi_url}"\ndefault = true\n'
    elsewhere = ('[[tool.uv.index]]\nname = "elsewhere"\nurl = "https://pypi.example.org/simple"\n'
                 "explicit = true\n")
    where = project_dir(ws, "uvdoctor", private + "\n" + elsewhere)
    pyproject = where / "pyproject.toml"
    (where / "src").mkdir()
    env = tool_env(ws)

    def doctor() -> str:  # from a directory below the project, as uv finds its settings
        return ws.credhelper("doctor", check=False, cwd=str(where / "src"), env=env).stdout

    said = f"uv index: {pyproject}: index 'private' ({ws.em.pypi_url})"
    report = doctor()
    assert f"! {said}: uv asks each of its URLs without the token first" in report, report
    assert f'fix: add authenticate = "always" to that index in {pyproject}' in report
    assert "elsewhere" not in report  # not a host credhelper serves

    # the fix doctor names: uv then sends the token with its very first request
    pyproject.write_text(pyproject.read_text().replace(
        "default = true\n", 'default = true\nauthenticate = "always"\n', 1))
    since = len(ws.em.feeds.log)
    proc = ws.run([str(uv()), "add", "uv-doctor-dep", "--no-cache"], env=env, cwd=str(where),
                  stdin=subprocess.DEVNULL)
    asked = served(ws, "uv-doctor-dep", since)
    assert asked and all(e["status"] == 200 and e["auth"] == "basic" for e in asked), asked
    assert no_token_in(ws, proc.stdout, proc.stderr)
    report = doctor()
    assert f"✓ {said} gets the token with uv's first request" in report, report

    pyproject.write_text(pyproject.read_text().replace('"always"', '"never"', 1))
    report = doctor()
    assert f'✗ {said} says authenticate = "never": uv sends it no token' in report, report
    assert no_token_in(ws, report)


# poetry --------------------------------------------------------------------------------------

def test_poetry_add_lock_install_with_a_private_source(feed: Workspace) -> None:
    ws = feed
    ws.em.feeds.add_wheel("poetry-dep", "1.0.0")
    where = project_dir(ws, "poetryproj",
                        '[tool.poetry]\npackage-mode = false\n\n[[tool.poetry.source]]\n'
                        f'name = "private"\nurl = "{ws.em.pypi_url}"\npriority = "primary"\n')
    env = tool_env(ws)
    nothing = ws.run([str(poetry().parent / "python"), "-c", "import credhelper"], check=False,
                     cwd=str(ws.root))
    assert "No module named 'credhelper'" in nothing.stderr  # poetry's venv is its own
    outputs = []
    for args in (["add", "poetry-dep"], ["lock", "--regenerate"], ["install"]):
        if args[0] == "install":
            shutil.rmtree(where / ".venv")
            shutil.rmtree(ws.root / "poetry-cache" / "artifacts", ignore_errors=True)
        since = len(ws.em.feeds.log)
        proc = ws.run([str(poetry()), *args, "--no-interaction"], env=env, cwd=str(where),
                      stdin=subprocess.DEVNULL)
        outputs += [proc.stdout, proc.stderr]
        wanted = "/files/" if args[0] == "install" else "/simple/"
        assert any(e["status"] == 200 and e["auth"] == "basic" and wanted in str(e["path"])
                   for e in served(ws, "poetry-dep", since)), args
    lock = (where / "poetry.lock").read_text()
    assert 'name = "poetry-dep"' in lock
    assert list((where / ".venv").glob("lib/python*/site-packages/poetry_dep/__init__.py"))
    assert no_token_in(ws, lock, *outputs)


# publishing ----------------------------------------------------------------------------------

def uploads(ws: Workspace, since: int) -> List[Dict[str, object]]:
    return [e for e in ws.em.feeds.log[since:] if e["path"] == "/pypi/legacy/"]


def test_uv_publish_then_install(feed: Workspace) -> None:
    ws = feed
    wheel = publishable(ws.root / "dist-uv", "uv-published")
    since = len(ws.em.feeds.log)
    proc = ws.run([str(uv()), "publish", "--trusted-publishing", "never", "--publish-url",
                   ws.em.pypi_upload_url, str(wheel)], env=tool_env(ws), stdin=subprocess.DEVNULL)
    assert [(e["method"], e["auth"], e["status"]) for e in uploads(ws, since)] == [
        ("POST", "basic", 200)]
    site = ws.root / "site-uv-published"
    ws.run([str(uv()), "pip", "install", "--target", str(site), "--index-url", ws.em.pypi_url,
            "uv-published"], env=tool_env(ws), stdin=subprocess.DEVNULL)
    assert installed(site, "uv-published")
    assert no_token_in(ws, proc.stdout, proc.stderr)


def test_twine_upload_with_credhelper_token(feed: Workspace) -> None:
    ws = feed
    wheel = publishable(ws.root / "dist-twine", "twine-published")
    since = len(ws.em.feeds.log)
    # twine reads no netrc while it has a user name; the token goes in through its environment
    token = ws.credhelper("token", ws.em.pypi_upload_url).stdout.strip()
    env = tool_env(ws, TWINE_USERNAME="entra", TWINE_PASSWORD=token)
    cmd = [str(twine()), "upload", "--non-interactive", "--disable-progress-bar",
           "--repository-url", ws.em.pypi_upload_url, str(wheel)]
    proc = ws.run(cmd, env=env, stdin=subprocess.DEVNULL)
    assert [(e["auth"], e["status"]) for e in uploads(ws, since)] == [("basic", 200)]
    again = ws.run(cmd, env=env, check=False, stdin=subprocess.DEVNULL)
    assert again.returncode != 0 and "400" in again.stdout + again.stderr  # already exists
    wrong = ws.run(cmd, env=dict(env, TWINE_PASSWORD="not-a-token"), check=False,
                   stdin=subprocess.DEVNULL)
    assert wrong.returncode != 0 and "401" in wrong.stdout + wrong.stderr
    assert no_token_in(ws, proc.stdout, proc.stderr, again.stdout, again.stderr)


def test_the_block_follows_a_new_token(feed: Workspace) -> None:
    ws = feed
    netrc = ws.home / ".netrc"
    old = ws.client().get(ws.em.pypi_url)["token"]
    assert f"password {old}" in netrc.read_text()
    ws.client().invalidate(ws.em.pypi_url, old)   # what a 401 does: the next get acquires anew
    new = ws.client().get(ws.em.pypi_url)["token"]
    assert new != old
    assert wait_for(lambda: f"password {new}" in netrc.read_text())
    assert old not in netrc.read_text() and stat.S_IMODE(netrc.stat().st_mode) == 0o600


# configure --remove --------------------------------------------------------------------------

def test_remove_undoes_and_the_daemon_stops_keeping_the_block(ws: Workspace) -> None:
    ws.default_config()
    netrc = ws.home / ".netrc"
    mine = "# my own entries\nmachine example.org login me password hunter2hunter2\n"
    netrc.write_text(mine)
    netrc.chmod(0o600)
    ws.credhelper("configure", "pip")
    ws.start_daemon()
    assert wait_for(lambda: has_line(ws)), ws.daemon_output()
    assert netrc_text(ws).startswith(mine)
    assert stat.S_IMODE(netrc.stat().st_mode) == 0o600

    out = ws.credhelper("configure", "pip", "--remove").stdout
    assert "removed the credhelper block" in out
    assert netrc_text(ws) == mine
    assert "pip is not configured" in ws.credhelper("configure", "pip", "--remove").stdout
    ws.client().call("reload")  # a reload would have rewritten it, were pip still configured
    ws.stop_daemon()
    ws.start_daemon()
    ws.client().get(ws.em.pypi_url)  # a fresh token: the daemon would write it now if it kept it
    ws.client().call("reload")
    assert netrc_text(ws) == mine

    ws.credhelper("configure", "pip")  # configuring again brings it back, daemon running
    assert wait_for(lambda: has_line(ws)), ws.daemon_output()
    assert netrc_text(ws).startswith(mine)


def test_removing_one_tool_keeps_the_block_for_the_others(ws: Workspace) -> None:
    ws.default_config()
    ws.credhelper("configure", "pip")
    ws.credhelper("configure", "uv")
    ws.start_daemon()
    assert wait_for(lambda: has_line(ws))
    out = ws.credhelper("configure", "uv", "--remove").stdout
    assert "uv: no longer served" in out and "removed" not in out
    ws.client().call("reload")
    assert has_line(ws)
    ws.credhelper("configure", "pip", "--remove")
    ws.client().call("reload")
    assert not has_line(ws) and not (ws.home / ".netrc").exists()  # we created it, it goes


# before sign-in ------------------------------------------------------------------------------

def test_before_sign_in_nothing_waits_and_nothing_crashes(ws: Workspace) -> None:
    person_config(ws)
    for tool in ("pip", "uv", "poetry"):
        ws.credhelper("configure", tool)
    ws.start_daemon()
    ws.em.feeds.add_wheel("before-signin", "1.0.0")
    env = tool_env(ws)
    python = fresh_venv(ws.root / "venv", pip_wheels()[-1])
    runs = {
        "pip": [str(python), "-m", "pip", "install", "--no-input", "--no-deps", "--target",
                str(ws.root / "site-pip"), "--index-url", ws.em.pypi_url, "before-signin"],
        "uv": [str(uv()), "pip", "install", "--target", str(ws.root / "site-uv"),
               "--index-url", ws.em.pypi_url, "before-signin"],
    }
    for name, cmd in runs.items():
        proc = ws.run(cmd, env=env, check=False, stdin=subprocess.DEVNULL, timeout=60,
                      cwd=str(ws.root))
        assert proc.returncode != 0, name
        assert "Traceback" not in proc.stdout + proc.stderr, name
    where = project_dir(ws, "signinproj",
                        '[tool.poetry]\npackage-mode = false\n\n[[tool.poetry.source]]\n'
                        f'name = "private"\nurl = "{ws.em.pypi_url}"\npriority = "primary"\n')
    proc = ws.run([str(poetry()), "add", "before-signin"], env=env, cwd=str(where), check=False,
                  stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout + proc.stderr
    # they cannot ask credhelper why; doctor tells the person what to run
    doctor = ws.credhelper("doctor", check=False, cwd=str(ws.root)).stdout
    assert "account 'work' is not signed in" in doctor
    assert "fix: run: credhelper login work" in doctor
    assert not has_line(ws)
