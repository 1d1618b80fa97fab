"""A real daemon per ``assertion_provider``, each platform played by the emulator's stand-in:
`credhelper token` and git get tokens of the platform's own app, and nothing else is asked.
"""

import json
import sys
from typing import Dict

import pytest

from harness import Workspace

# provider -> the emulator app whose federated credential trusts that platform's issuer
APPS = {"ona": "ona-app", "gitpod": "fed-app", "github_actions": "actions-app",
        "azure_workload_identity": "aks-app", "auto": "aks-app"}
CLIS = {"ona": "ona", "gitpod": "gp"}


def as_platform(ws: Workspace, provider: str) -> Dict[str, str]:
    """Make the workspace look like the platform: its CLI on PATH, or its variables, or its file."""
    em = ws.em
    bin_dir = ws.gp.parent
    ws.gp.unlink()  # the harness's own `gp`: only the platform under test may be present
    cli = CLIS.get(provider)
    if cli:
        path = bin_dir / cli
        path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m credhelper.emulator {cli} '
                        f'--dir "{em.workdir}" "$@"\n')
        path.chmod(0o755)
    if provider == "github_actions":
        ws.env["ACTIONS_ID_TOKEN_REQUEST_URL"] = em.actions_request_url
        ws.env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = em.actions_request_token
    if provider in ("azure_workload_identity", "auto"):
        token_file = ws.root / "azure-identity-token"
        em.write_federated_token_file(token_file)
        ws.env["AZURE_FEDERATED_TOKEN_FILE"] = str(token_file)
    return ws.env


def configure(ws: Workspace, provider: str) -> None:
    em = ws.em
    ws.write_config(
        {"workspace": {"authority": f"{em.idp_base}/{em.tenant}", "client_id": APPS[provider],
                       "flow": "federated", "assertion_provider": provider,
                       "ca_bundle": str(em.ca_file)}},
        [{"url": f"{em.feed_base}/", "account": "workspace", "preset": "azure-devops"}])


@pytest.mark.parametrize("provider", sorted(APPS))
def test_daemon_serves_tokens_from_each_provider(ws: Workspace, provider: str) -> None:
    em = ws.em
    as_platform(ws, provider)
    configure(ws, provider)
    ws.start_daemon()
    before = em.idp.count(grant_type="client_credentials", client_id=APPS[provider])
    token = ws.credhelper("token", em.git_url()).stdout.strip()
    assert em.idp.check_access_token(token)["appid"] == APPS[provider]
    assert em.idp.count(grant_type="client_credentials", client_id=APPS[provider]) == before + 1
    status = ws.credhelper("status", "--json").stdout
    assert token not in status


def test_git_clones_in_an_ona_environment(ws: Workspace) -> None:
    em = ws.em
    as_platform(ws, "ona")
    configure(ws, "ona")
    ws.credhelper("configure", "git")
    ws.start_daemon()
    ws.git("clone", "--quiet", em.git_url(), str(ws.root / "checkout"))
    assert (ws.root / "checkout" / "README.md").exists()
    assert any(e["status"] == 200 and e["auth"] for e in em.feeds.log)
    checks = {c["name"]: c for c in json.loads(ws.credhelper("doctor", "--json",
                                                             check=False).stdout)["checks"]}
    assert checks["workload workspace"]["status"] == "ok"
    assert checks["workload workspace"]["message"] == \
        "assertion_provider ona: `ona` or `gitpod` CLI on PATH"


def test_a_missing_platform_is_one_clear_line(ws: Workspace) -> None:
    """Configured for Actions, but the job lacks `id-token: write`: the error names the provider."""
    em = ws.em
    configure(ws, "github_actions")
    ws.start_daemon()
    proc = ws.credhelper("token", em.git_url(), check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "assertion_provider github_actions" in lines[0], lines
    assert "Traceback" not in ws.logs()
    doctor = ws.credhelper("doctor", "--json", check=False)
    assert doctor.returncode == 1
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["workload workspace"] == {
        "name": "workload workspace", "status": "fail",
        "message": "assertion_provider github_actions: no ACTIONS_ID_TOKEN_REQUEST_URL and "
                   "ACTIONS_ID_TOKEN_REQUEST_TOKEN here",
        "fix": "give the job `permissions: id-token: write`"}
