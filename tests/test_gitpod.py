"""The Gitpod tasks, run as Gitpod runs them: prebuild, start from the prebuild, restart.

A simulated /workspace (with the checkout and its .venv) and $HOME live in tmp_path; a fake `gp`
logs what it is asked. The rule under test: a prebuild starts nothing and obtains no token, and
nothing the daemon writes lands in /workspace (Gitpod saves that folder into snapshots).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from credhelper.client import Client
from credhelper.commands.init import render_config
from harness import wait_for

ROOT = Path(__file__).resolve().parents[1]
TASK_KEYS = ("name", "before", "init", "command")
LINE = re.compile(r"^\s*(-\s+)?(\w+):\s*(.*?)\s*$")


def read_tasks(path: Path) -> List[Dict[str, str]]:
    """The tasks of a .gitpod.yml kept to one-line ``key: value`` entries (no PyYAML)."""
    tasks: List[Dict[str, str]] = []
    in_tasks = False
    for raw in path.read_text().splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        match = LINE.match(raw)
        assert match, f"{path}: line too clever for this parser: {raw!r}"
        item, key, value = match.groups()
        if not raw.startswith((" ", "-")):
            in_tasks = key == "tasks"
            continue
        if in_tasks:
            if item:
                tasks.append({})
            assert key in TASK_KEYS and value, f"{path}: unexpected task entry {raw!r}"
            tasks[-1][key] = value
    return tasks


def test_gitpod_yml_runs_one_script_per_phase():
    assert read_tasks(ROOT / ".gitpod.yml") == [{
        "name": "credhelper",
        "before": "bash .gitpod/credhelper.sh install",
        "init": "bash .gitpod/credhelper.sh prebuild",
        "command": "bash .gitpod/credhelper.sh start",
    }]


class Workspace:
    """A simulated Gitpod workspace: /workspace with the checkout, a $HOME, a fake gp."""

    def __init__(self, tmp: Path, own_checkout: bool = True) -> None:
        self.root = tmp / "workspace"
        self.repo = self.root / ("credhelper" if own_checkout else "app")
        self.home = tmp / "home"
        self.calls = tmp / "credhelper-calls.log"
        self.gp_log = tmp / "gp.log"
        shutil.copytree(ROOT / ".gitpod", self.repo / ".gitpod")
        shutil.copy(ROOT / ".gitpod.yml", self.repo)
        if own_checkout:  # what marks credhelper's own checkout
            for name in ("setup.cfg", "credhelper/__init__.py"):
                (self.repo / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / name, self.repo / name)
            self.venv = self.repo / ".venv"
        else:
            self.venv = self.root / ".credhelper-venv"
        bin_dir = self.venv / "bin"  # as if `install` had run: no pip in tests
        bin_dir.mkdir(parents=True)
        self._script(bin_dir / "python", f'exec "{sys.executable}" "$@"')
        self._script(bin_dir / "credhelper",
                     f'echo "$*" >> "{self.calls}"\n'
                     f'exec "{Path(sys.executable).parent / "credhelper"}" "$@"')
        self._script(bin_dir / "git-credential-entra",
                     f'exec "{Path(sys.executable).parent / "git-credential-entra"}" "$@"')
        fake_bin = self.fake_bin = tmp / "fakebin"
        fake_bin.mkdir()
        self._script(fake_bin / "gp", f'echo "$*" >> "{self.gp_log}"\n'
                     'case "$*" in "idp token"*) echo e30.e30.c2ln ;; esac')
        self.env = {
            "PATH": f"{fake_bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home), "PYTHONPATH": str(ROOT),
            "GITPOD_REPO_ROOT": str(self.repo), "CREDHELPER_WORKSPACE_ROOT": str(self.root),
            "GITPOD_WORKSPACE_ID": "test-ws",
        }
        self.tasks = read_tasks(self.repo / ".gitpod.yml")
        self.home.mkdir()

    @staticmethod
    def _script(path: Path, body: str) -> None:
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)

    def run(self, *phases: str, headless: bool = False, **env: str) -> subprocess.CompletedProcess:
        """Run the tasks' phases in one shell, in order, as Gitpod does."""
        lines = [task[phase] for phase in phases for task in self.tasks if phase in task]
        full_env = dict(self.env, GITPOD_HEADLESS="true" if headless else "false", **env)
        return subprocess.run(
            ["bash", "-ec", "\n".join(lines)], cwd=self.repo, env=full_env,
            capture_output=True, text=True, timeout=120,
        )

    def serve_gp_from(self, em) -> None:
        """Make the fake gp answer `idp token` with the emulator's workspace identity."""
        self._script(self.fake_bin / "gp", f'echo "$*" >> "{self.gp_log}"\n'
                     f'case "$*" in "idp token"*) exec "{sys.executable}" -m credhelper.emulator '
                     f'gp --dir "{em.workdir}" "$@" ;; esac')

    def terminal_env(self, em) -> Dict[str, str]:
        """A new terminal after `start`: PATH as the .bashrc.d hook sets it, the emulator's CA."""
        return dict(self.env, PATH=f"{self.venv / 'bin'}:{self.env['PATH']}",
                    GIT_SSL_CAINFO=str(em.ca_file), GIT_CONFIG_NOSYSTEM="1",
                    GIT_TERMINAL_PROMPT="0", CREDHELPER_NO_AUTOSTART="1")

    def snapshot(self) -> Dict[str, bytes]:
        """What Gitpod would save: every file under /workspace (bytecode caches aside)."""
        return {str(p.relative_to(self.root)): p.read_bytes()
                for p in sorted(self.root.rglob("*"))
                if p.is_file() and "__pycache__" not in p.parts}

    def credhelper_calls(self) -> List[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []

    def token_requests(self) -> List[str]:
        log = self.gp_log.read_text().splitlines() if self.gp_log.exists() else []
        return [line for line in log if line.startswith("idp token")]

    def socket(self) -> Path:
        return self.home / ".cache" / "credhelper" / "daemon.sock"


@pytest.fixture
def ws(tmp_path):
    workspace = Workspace(tmp_path)
    yield workspace
    client = Client(workspace.socket(), timeout=5)
    if client.ping():
        client.call("stop")


def test_prebuild_installs_but_starts_nothing_and_asks_for_no_token(ws):
    before = ws.snapshot()
    result = ws.run("before", "init", headless=True)
    assert result.returncode == 0, result.stderr
    assert "prebuild: installed; no daemon and no sign-in" in result.stderr
    assert ws.credhelper_calls() == []  # not `start`, `configure`, `login` nor `token`
    assert ws.token_requests() == []
    assert not ws.socket().exists() and not (ws.home / ".local" / "state" / "credhelper").exists()
    assert ws.snapshot() == before
    hook = (ws.home / ".bashrc.d" / "60-credhelper").read_text()
    assert hook == f'export PATH="{ws.venv / "bin"}:$PATH"\n'


def test_another_repository_gets_its_own_venv_beside_the_checkout(tmp_path):
    # A user's project keeps its .venv; credhelper's goes to /workspace/.credhelper-venv.
    ws = Workspace(tmp_path, own_checkout=False)
    result = ws.run("before", "init", headless=True)
    assert result.returncode == 0, result.stderr
    hook = (ws.home / ".bashrc.d" / "60-credhelper").read_text()
    assert hook == f'export PATH="{ws.root / ".credhelper-venv" / "bin"}:$PATH"\n'
    assert ws.credhelper_calls() == [] and ws.token_requests() == []


def test_a_headless_command_does_not_start_the_daemon_either(ws):
    (ws.repo / ".gitpod" / "credhelper.toml").write_text(
        render_config(gitpod=True, tenant="contoso", client_id="fed-app"))
    result = ws.run("before", "command", headless=True)
    assert result.returncode == 0, result.stderr
    assert "headless (prebuild): not starting the daemon" in result.stderr
    assert ws.credhelper_calls() == [] and ws.token_requests() == []


def test_state_under_workspace_is_refused(ws):
    before = ws.snapshot()
    result = ws.run("before", "command", CREDHELPER_STATE_DIR=str(ws.root / "state"))
    assert result.returncode == 3
    assert "which Gitpod saves into snapshots" in result.stderr
    assert ws.credhelper_calls() == [] and ws.snapshot() == before


def test_socket_under_workspace_is_refused(ws):
    result = ws.run("before", CREDHELPER_SOCKET=str(ws.repo / "daemon.sock"))
    assert result.returncode == 3
    assert "refusing" in result.stderr


def test_start_without_any_config_explains_and_starts_nothing(ws):
    result = ws.run("before", "command")
    assert result.returncode == 0, result.stderr
    assert "no config: run 'credhelper init --help'" in result.stderr
    assert ws.credhelper_calls() == []


def federated_config(em) -> str:
    """The workspace identity from `gp idp token`, trusted by the emulator, for its feed."""
    gp_command = json.dumps(["gp", "idp", "token", "--audience", "api://AzureADTokenExchange"])
    return (f'[accounts.workspace]\nauthority = "{em.idp_base}/{em.tenant}"\n'
            f'client_id = "fed-app"\nflow = "federated"\nassertion_command = {gp_command}\n'
            f'ca_bundle = "{em.ca_file}"\n\n'
            f'[[routes]]\nurl = "{em.feed_base}/"\naccount = "workspace"\npreset = "azure-devops"\n')


def test_prebuild_then_start_then_restart(ws, em):
    ws.serve_gp_from(em)
    (ws.repo / ".gitpod" / "credhelper.toml").write_text(federated_config(em))
    snapshot = ws.snapshot()
    tokens_before = em.idp.count()
    federated_before = em.idp.count(client_id="fed-app")
    prebuild = ws.run("before", "init", headless=True)
    assert prebuild.returncode == 0, prebuild.stderr
    assert ws.credhelper_calls() == [] and not ws.socket().exists()

    start = ws.run("before", "command")
    assert start.returncode == 0, start.stderr
    assert ws.credhelper_calls() == ["start", "configure all"]
    assert Client(ws.socket(), timeout=5).ping()
    assert (ws.home / ".config" / "credhelper" / "config.toml").exists()
    assert ws.snapshot() == snapshot  # the daemon wrote its state under $HOME only
    # `configure all` configures pip, uv and poetry, which read ~/.netrc and cannot ask the daemon:
    # it fills that block at once, into $HOME (never /workspace); git still asks on first use
    netrc = ws.home / ".netrc"
    assert wait_for(lambda: netrc.exists() and "machine localhost " in netrc.read_text())
    assert ws.snapshot() == snapshot and em.idp.count() > tokens_before
    assert "sync-done credhelper" in ws.gp_log.read_text()

    # A new terminal: its PATH comes from the hook; git needs no further step.
    clone = ws.root / "demo"
    result = subprocess.run(["git", "clone", "--quiet", em.git_url(), str(clone)],
                            env=ws.terminal_env(em), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (clone / "README.md").exists()
    assert em.idp.count(client_id="fed-app") > federated_before and ws.token_requests()
    doctor = subprocess.run([str(ws.venv / "bin" / "credhelper"), "doctor", "--json"], cwd=clone,
                            env=ws.terminal_env(em), capture_output=True, text=True, timeout=60)
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["workspace"]["status"] == "ok", checks["workspace"]  # clone's .git/config too
    assert checks["token workspace"]["status"] == "ok", checks["token workspace"]

    # A restart keeps /workspace and nothing else: the daemon is gone and $HOME is fresh.
    # `credhelper stop` returns once the process has ended, so it no longer writes under $HOME
    # (a stopping daemon keeps its tokens there) while the old $HOME is removed.
    stop = subprocess.run([str(ws.venv / "bin" / "credhelper"), "stop"], env=ws.terminal_env(em),
                          capture_output=True, text=True, timeout=60)
    assert stop.returncode == 0 and "daemon stopped" in stop.stdout, stop.stderr
    shutil.rmtree(ws.home)
    ws.home.mkdir()
    snapshot = ws.snapshot()
    restart = ws.run("before", "command")
    assert restart.returncode == 0, restart.stderr
    assert ws.credhelper_calls()[-2:] == ["start", "configure all"]
    assert Client(ws.socket(), timeout=5).ping()
    assert ws.snapshot() == snapshot
    assert os.path.exists(ws.home / ".bashrc.d" / "60-credhelper")
    fetch = subprocess.run(["git", "-C", str(clone), "fetch", "--quiet"], env=ws.terminal_env(em),
                           capture_output=True, text=True, timeout=60)
    assert fetch.returncode == 0, fetch.stderr
