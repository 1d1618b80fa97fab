"""The Ona automations, run as Ona runs them: load .ona/automations.yaml, start the services and
tasks triggered by ``postEnvironmentStart`` (a service's ``start`` stays running, its ``ready``
is polled until it exits 0, a task waits for what it ``dependsOn``), stop services with SIGTERM.

A simulated /workspace (with the checkout and its .venv) and $HOME live in tmp_path; a fake `ona`
is the emulator's stand-in for the environment's identity. The rules under test: the daemon runs
while the environment does, git works in a new terminal with no step of its own, and nothing the
daemon writes lands in /workspace.
"""

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import yaml

from credhelper.client import Client
from credhelper.errors import DaemonUnavailable
from harness import wait_for

ROOT = Path(__file__).resolve().parents[1]
TRIGGERS = {"manual", "postDevcontainerStart", "postEnvironmentStart", "prebuild",
            "beforeSnapshot"}
SERVICE_FIELDS = {"name", "description", "commands", "triggeredBy", "role", "runsOn"}
TASK_FIELDS = {"name", "description", "command", "dependsOn", "triggeredBy", "runsOn"}
KEY = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")


def load_automations(path: Path) -> dict:
    """The file as Ona reads it (YAML), checked against Ona's published schema."""
    doc = yaml.safe_load(path.read_text())
    assert set(doc) <= {"services", "tasks"}, set(doc)
    for kind, fields in (("services", SERVICE_FIELDS), ("tasks", TASK_FIELDS)):
        for key, item in (doc.get(kind) or {}).items():
            assert KEY.match(key), key
            assert set(item) <= fields and item.get("name"), (key, item)
            assert set(item.get("triggeredBy", [])) <= TRIGGERS, item["triggeredBy"]
            if kind == "services":
                assert set(item["commands"]) <= {"start", "ready", "stop"}
                assert item["commands"]["start"]
            else:
                assert item["command"]
    return doc


def test_automations_start_the_daemon_when_the_environment_starts():
    doc = load_automations(ROOT / ".ona" / "automations.yaml")
    service = doc["services"]["credhelper"]
    assert service["triggeredBy"] == ["postEnvironmentStart"]
    assert service["commands"] == {"start": "bash .ona/credhelper.sh serve",
                                   "ready": "bash .ona/credhelper.sh ready"}
    task = doc["tasks"]["credhelper-configure"]
    assert task["dependsOn"] == ["credhelper"] and task["triggeredBy"] == ["postEnvironmentStart"]


class Environment:
    """A simulated Ona environment: /workspace with the checkout, a $HOME, a fake `ona`."""

    def __init__(self, tmp: Path, em) -> None:
        self.em = em
        self.root = tmp / "workspace"
        self.repo = self.root / "credhelper"
        self.home = tmp / "home"
        self.home.mkdir()
        self.calls = tmp / "credhelper-calls.log"
        shutil.copytree(ROOT / ".ona", self.repo / ".ona")
        for name in ("setup.cfg", "credhelper/__init__.py"):  # what marks credhelper's checkout
            (self.repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, self.repo / name)
        self.venv = self.repo / ".venv"
        bin_dir = self.venv / "bin"  # as if installed: no pip in tests
        bin_dir.mkdir(parents=True)
        real = Path(sys.executable).parent
        self._script(bin_dir / "python", f'exec "{sys.executable}" "$@"')
        self._script(bin_dir / "credhelper",
                     f'echo "$*" >> "{self.calls}"\nexec "{real / "credhelper"}" "$@"')
        self._script(bin_dir / "git-credential-entra", f'exec "{real / "git-credential-entra"}" "$@"')
        fake_bin = tmp / "fakebin"
        fake_bin.mkdir()
        self._script(fake_bin / "ona", f'exec "{sys.executable}" -m credhelper.emulator ona '
                                       f'--dir "{em.workdir}" "$@"')
        self.env = {
            "PATH": f"{fake_bin}:/usr/local/bin:/usr/bin:/bin", "HOME": str(self.home),
            "PYTHONPATH": str(ROOT), "CREDHELPER_WORKSPACE_ROOT": str(self.root),
            "GIT_CONFIG_NOSYSTEM": "1", "CREDHELPER_HTTP_TIMEOUT": "5",
        }
        self.automations = load_automations(self.repo / ".ona" / "automations.yaml")
        self.services: Dict[str, subprocess.Popen] = {}
        self.log = tmp / "services.log"

    @staticmethod
    def _script(path: Path, body: str) -> None:
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)

    def write_config(self) -> None:
        em = self.em
        (self.repo / ".ona" / "credhelper.toml").write_text(
            f'[accounts.environment]\nauthority = "{em.idp_base}/{em.tenant}"\n'
            f'client_id = "ona-app"\nflow = "federated"\nassertion_provider = "ona"\n'
            f'ca_bundle = "{em.ca_file}"\n\n'
            f'[[routes]]\nurl = "{em.feed_base}/"\naccount = "environment"\n'
            f'preset = "azure-devops"\n')

    def _shell(self, command: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", command], cwd=self.repo, env=dict(self.env, **env),
                              capture_output=True, text=True, timeout=120)

    def start(self, trigger: str = "postEnvironmentStart", **env: str) -> List[str]:
        """Start what ``trigger`` starts, as Ona does; returns the names of failed items."""
        failed = []
        log = open(self.log, "ab")
        for key, service in (self.automations.get("services") or {}).items():
            if trigger not in service.get("triggeredBy", []):
                continue
            proc = subprocess.Popen(["bash", "-c", service["commands"]["start"]], cwd=self.repo,
                                    env=dict(self.env, **env), stdout=log, stderr=log)
            self.services[key] = proc
            ready = service["commands"].get("ready")
            if ready and not wait_for(lambda: proc.poll() is not None
                                      or self._shell(ready, **env).returncode == 0, 30):
                failed.append(key)
            if proc.poll() is not None:  # a service whose start exits is Stopped or Failed
                failed.append(key)
        for key, task in (self.automations.get("tasks") or {}).items():
            if trigger not in task.get("triggeredBy", []):
                continue
            if any(dep in failed for dep in task.get("dependsOn", [])):
                failed.append(key)  # Ona does not run a task whose dependency failed
                continue
            result = self._shell(task["command"], **env)
            if result.returncode != 0:
                failed.append(key)
                self.log.open("a").write(result.stderr)
        return failed

    def stop(self) -> Optional[int]:
        """Stop every service: SIGTERM, then (after Ona's grace) SIGKILL."""
        code = None
        for proc in self.services.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    code = proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait()
        self.services = {}
        return code

    def terminal_env(self) -> Dict[str, str]:
        """A new terminal: PATH as the .bashrc.d hook sets it, the emulator's CA for git."""
        hook = (self.home / ".bashrc.d" / "60-credhelper").read_text()
        bin_dir = re.match(r'export PATH="(.*):\$PATH"', hook).group(1)
        return dict(self.env, PATH=f"{bin_dir}:{self.env['PATH']}",
                    GIT_SSL_CAINFO=str(self.em.ca_file), GIT_TERMINAL_PROMPT="0",
                    CREDHELPER_NO_AUTOSTART="1")

    def snapshot(self) -> Dict[str, bytes]:
        """What Ona keeps of /workspace (bytecode caches aside)."""
        return {str(p.relative_to(self.root)): p.read_bytes()
                for p in sorted(self.root.rglob("*"))
                if p.is_file() and "__pycache__" not in p.parts}

    def socket(self) -> Path:
        return self.home / ".cache" / "credhelper" / "daemon.sock"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def calls_made(self) -> List[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []


@pytest.fixture
def env(tmp_path, em):
    environment = Environment(tmp_path, em)
    yield environment
    environment.stop()
    client = Client(environment.socket(), timeout=5)
    if client.ping():
        try:
            client.call("stop")
        except DaemonUnavailable:  # it was on its way out between the ping and the stop
            pass


def test_start_stop_and_restart_of_an_ona_environment(env, em):
    env.write_config()
    snapshot = env.snapshot()
    before = em.idp.count(client_id="ona-app")
    assert env.start() == [], env.output()
    assert Client(env.socket(), timeout=5).ping()
    assert env.calls_made() == ["daemon", "configure all"]
    assert (env.home / ".config" / "credhelper" / "config.toml").stat().st_mode & 0o777 == 0o600
    # `configure all` configures pip, uv and poetry, which read ~/.netrc and cannot ask the daemon:
    # it fills that block at once (in $HOME, never the snapshot); git still asks on first use
    netrc = env.home / ".netrc"
    assert wait_for(lambda: netrc.exists() and "machine " in netrc.read_text())

    clone = env.root / "demo"
    result = subprocess.run(["git", "clone", "--quiet", em.git_url(), str(clone)],
                            env=env.terminal_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert em.idp.count(client_id="ona-app") > before
    shutil.rmtree(clone)
    assert env.snapshot() == snapshot  # state, socket, config: all under $HOME

    assert env.stop() == 0  # SIGTERM reaches the daemon itself: a clean exit
    assert not Client(env.socket(), timeout=5).ping()

    # the environment starts again (same $HOME and /workspace): the service comes back
    assert env.start() == [], env.output()
    fetch = subprocess.run(["git", "ls-remote", em.git_url()], env=env.terminal_env(),
                           capture_output=True, text=True, timeout=60)
    assert fetch.returncode == 0, fetch.stderr


def test_the_service_takes_over_an_autostarted_daemon(env, em):
    env.write_config()
    assert env.start() == [], env.output()
    first = env.services["credhelper"]
    # the service dies under the daemon's feet (a kill -9 of the supervisor's child is not
    # needed: stop it, then let an autostarted daemon sit on the socket)
    env.stop()
    subprocess.run([str(env.venv / "bin" / "credhelper"), "start"], env=env.terminal_env(),
                   capture_output=True, timeout=60, check=True)
    assert env.start() == [], env.output()
    assert env.services["credhelper"] is not first and env.services["credhelper"].poll() is None


def test_without_a_config_the_service_fails_with_one_clear_line(env):
    assert env.start() == ["credhelper", "credhelper-configure"]
    assert "no config: run 'credhelper init --ona --help'" in env.output()
    assert "Traceback" not in env.output()


def test_state_under_workspace_is_refused(env):
    env.write_config()
    before = env.snapshot()
    failed = env.start(CREDHELPER_STATE_DIR=str(env.root / "state"))
    assert "credhelper" in failed
    assert "which Ona keeps with the environment" in env.output()
    assert env.snapshot() == before and "daemon" not in env.calls_made()


def test_gitpod_yml_is_untouched_by_ona_support():
    # Gitpod Classic keeps its own tasks; Ona reads only .ona/automations.yaml.
    assert "ona" not in json.dumps(yaml.safe_load((ROOT / ".gitpod.yml").read_text()))
