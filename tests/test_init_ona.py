"""`credhelper init --ona`, run as a person runs it in an Ona environment (the emulator's `ona`):
the config it writes federates, and what it prints is what the directory must hold, never the token.
"""

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

from credhelper import config
from credhelper.commands.init_ona import sub_parts, subject_warnings
from credhelper.emulator.workload import SUBJECTS
from harness import BIN


@pytest.fixture
def person(tmp_path, em) -> Dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDHELPER_", "XDG_"))}
    env.update(HOME=str(tmp_path / "home"), PATH=f"{bin_dir}:/usr/bin:/bin",
               CREDHELPER_CONFIG=str(tmp_path / "home" / "config.toml"))
    return env


def ona_cli(env: Dict[str, str], em, subject: str = "") -> None:
    extra = f' --subject "{subject}"' if subject else ""
    path = Path(env["PATH"].split(":")[0]) / "ona"
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m credhelper.emulator ona '
                    f'--dir "{em.workdir}" "$@"{extra}\n')
    path.chmod(0o755)


def init(env: Dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "credhelper"), "init", "--ona", "--tenant", "contoso",
                           "--client-id", "ona-app", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_init_ona_writes_a_federated_config_and_prints_what_to_register(person, em):
    ona_cli(person, em)
    result = init(person, "--azure-devops", "contoso")
    assert result.returncode == 0, result.stderr
    parsed = config.load(Path(person["CREDHELPER_CONFIG"]))
    account = parsed.accounts["work"]
    assert (account.flow, account.assertion_provider) == ("federated", "ona")
    assert account.assertion_audience == "api://AzureADTokenExchange"
    lines = result.stdout.splitlines()
    assert lines[1:5] == [
        "credhelper: ask an Entra admin to add a federated credential to app ona-app:",
        f"  issuer:   {em.workload_issuer('ona')}",
        f"  subject:  {SUBJECTS['ona']}",
        "  audience: api://AzureADTokenExchange",
    ]
    assert "eyJ" not in result.stdout + result.stderr  # no JWT, not even its header


def test_a_subject_per_environment_is_warned_about(person, em):
    ona_cli(person, em, subject="organization_id:o1:project_id:p1:environment_id:e1")
    result = init(person)
    assert result.returncode == 0, result.stderr
    assert "includes environment_id, which changes with each environment" in result.stdout
    assert "Entra allows 20 per app" in result.stdout


def test_more_than_twenty_projects_are_warned_about(person, em):
    ona_cli(person, em)
    result = init(person, "--projects", "45")
    assert result.returncode == 0, result.stderr
    assert "(one such credential per project: 45 subjects in all)" in result.stdout
    assert "45 projects need 45 subjects, more than the 20" in result.stdout
    assert "split them over 3 app registrations" in result.stdout
    quiet = init(person, "--projects", "20", "--force")
    assert "warning" not in quiet.stdout


def test_outside_ona_it_still_writes_and_says_why_it_cannot_tell(person):
    result = init(person)
    assert result.returncode == 0, result.stderr
    assert "could not read this environment's identity (assertion_provider ona: no `ona` or " \
           "`gitpod` command on PATH" in result.stdout
    assert Path(person["CREDHELPER_CONFIG"]).exists()


def test_ona_and_gitpod_are_exclusive(person):
    result = subprocess.run([str(BIN / "credhelper"), "init", "--ona", "--gitpod", "--tenant",
                             "contoso", "--client-id", "x"], env=person, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == "credhelper: choose one of --gitpod, --ona and --device-code"


@pytest.mark.parametrize("subject, parts, warned", [
    ("organization_id:o:project_id:p", ["organization_id", "project_id"], False),
    ("organization_id:o:project_id:p:user_id:u", ["organization_id", "project_id", "user_id"],
     True),
    ("repo:contoso/app:ref:refs/heads/main", ["repo", "ref"], True),
    ("workspace:demo:x", [], False),
])
def test_subject_parts(subject, parts, warned):
    assert sub_parts(subject) == parts
    assert bool(subject_warnings(subject)) == warned
