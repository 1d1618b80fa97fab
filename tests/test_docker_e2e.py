"""Container registries: the real docker CLI reads credHelpers, runs docker-credential-entra, and
pulls a manifest from the emulator's ACR-shaped registry with a refresh token the daemon traded.

docker's ``manifest inspect`` needs no docker engine. The emulator's CA reaches docker's Go TLS
stack through SSL_CERT_FILE, per process (``/etc/docker/certs.d`` would be machine-wide).
"""

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest

from harness import BIN, Workspace

NULL_USER = "00000000-0000-0000-0000-000000000000"
HELPER = str(BIN / "docker-credential-entra")
DOCKER = shutil.which("docker")
needs_docker = pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed "
                                  "(make test installs docker.io where it can)")


@pytest.fixture(scope="module")
def dws(module_ws: Workspace) -> Workspace:
    """One daemon with an ACR route for the registry and an Azure DevOps route for the feed."""
    em = module_ws.em
    module_ws.write_config(module_ws.federated_account(), [
        {"url": f"https://{em.registry_host}/", "account": "workspace", "preset": "acr"},
        {"url": f"{em.feed_base}/", "account": "workspace", "preset": "azure-devops"},
    ])
    module_ws.env["DOCKER_CONFIG"] = str(module_ws.home / ".docker")
    module_ws.start_daemon()
    return module_ws


def helper(ws: Workspace, action: str, stdin: str = "") -> subprocess.CompletedProcess:
    """Run docker-credential-entra as docker does."""
    return ws.run([HELPER, action], check=False, input=stdin)


def exchanges(em: Any) -> List[Dict[str, Any]]:
    return [e for e in em.registry.log if e["path"] == "/oauth2/exchange"]


def test_configure_docker_sets_cred_helpers_and_keeps_the_rest(dws: Workspace) -> None:
    path = Path(dws.env["DOCKER_CONFIG"]) / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    before = {"auths": {"other.example": {}}, "credsStore": "desktop",
              "credHelpers": {"gcr.io": "gcloud"}, "psFormat": "table {{.ID}}"}
    path.write_text(json.dumps(before))
    out = dws.credhelper("configure", "docker").stdout
    assert f"credHelpers['{dws.em.registry_host}'] = 'entra'" in out
    after = json.loads(path.read_text())
    assert after["credHelpers"] == {"gcr.io": "gcloud", dws.em.registry_host: "entra"}
    assert {k: v for k, v in after.items() if k != "credHelpers"} == {
        k: v for k, v in before.items() if k != "credHelpers"}
    assert "already configured" in dws.credhelper("configure", "docker").stdout
    dws.credhelper("configure", "docker", "--remove")
    assert json.loads(path.read_text()) == before
    dws.credhelper("configure", "docker")


@needs_docker
def test_docker_manifest_inspect_through_the_helper(dws: Workspace) -> None:
    em = dws.em
    dws.credhelper("configure", "docker")
    env = dict(dws.env, SSL_CERT_FILE=str(em.ca_file))
    done = dws.run([DOCKER, "manifest", "inspect", f"{em.registry_host}/demo/hello:1.0"],
                   env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads(done.stdout)
    assert manifest["schemaVersion"] == 2 and manifest["layers"]
    served = [e for e in em.registry.log if e["path"] == "/v2/demo/hello/manifests/1.0"]
    assert served and served[-1]["status"] == 200 and served[-1]["sub"]


@needs_docker
def test_docker_without_the_helper_is_refused(dws: Workspace) -> None:
    """The same pull with an empty docker config fails: the helper is what opens the registry."""
    em = dws.em
    empty = dws.root / "no-docker-config"
    empty.mkdir(exist_ok=True)
    env = dict(dws.env, SSL_CERT_FILE=str(em.ca_file), DOCKER_CONFIG=str(empty))
    done = dws.run([DOCKER, "manifest", "inspect", f"{em.registry_host}/demo/hello:1.0"],
                   env=env, check=False)
    assert done.returncode != 0


def test_get_answers_the_null_user_and_a_registry_token(dws: Workspace) -> None:
    em = dws.em
    done = helper(dws, "get", em.registry_host + "\n")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["ServerURL"] == em.registry_host and answer["Username"] == NULL_USER
    # the secret is the registry's refresh token, not the Entra token
    assert em.registry.key.verify(answer["Secret"])["grant_type"] == "refresh_token"
    same = json.loads(helper(dws, "get", f"https://{em.registry_host}/v2/").stdout)
    assert same["Secret"] == answer["Secret"] and same["ServerURL"] == f"https://{em.registry_host}/v2/"


def test_warm_get_trades_nothing(dws: Workspace) -> None:
    em = dws.em
    assert helper(dws, "get", em.registry_host).returncode == 0
    count = len(exchanges(em))
    for _ in range(3):
        assert helper(dws, "get", em.registry_host).returncode == 0
    assert len(exchanges(em)) == count


@pytest.mark.parametrize("server", [
    "evil.example", "localhost", "http://{registry}", "{registry}.evil.example",
    "{registry}@evil.example", "", "{feed}",
])
def test_get_for_anything_else_is_not_found(dws: Workspace, server: str) -> None:
    em = dws.em
    text = server.format(registry=em.registry_host, feed=em.feed_base[len("https://"):])
    done = helper(dws, "get", text)
    assert done.returncode == 1
    assert done.stdout.strip() == "credentials not found in native keychain"


def test_list_store_erase_version(dws: Workspace) -> None:
    em = dws.em
    listed = helper(dws, "list")
    assert listed.returncode == 0 and json.loads(listed.stdout) == {em.registry_host: NULL_USER}
    stored = helper(dws, "store", json.dumps({"ServerURL": em.registry_host, "Username": "u",
                                              "Secret": "s"}))
    assert stored.returncode == 0 and stored.stdout == ""
    assert helper(dws, "erase", em.registry_host).returncode == 0
    assert json.loads(helper(dws, "get", em.registry_host).stdout)["Username"] == NULL_USER
    assert "credhelper" in helper(dws, "version").stdout
    unknown = helper(dws, "frobnicate")
    assert unknown.returncode == 1 and unknown.stdout == ""


def test_without_a_daemon_get_is_not_found_with_a_hint(ws: Workspace) -> None:
    done = helper(ws, "get", ws.em.registry_host)
    assert done.returncode == 1 and "credentials not found" in done.stdout
    assert "credhelper start" in done.stderr


def test_audit_records_registry_gets_without_tokens(dws: Workspace) -> None:
    helper(dws, "get", dws.em.registry_host)
    audit = (dws.state_dir / "audit.log").read_text()
    entries = [json.loads(line) for line in audit.splitlines() if '"registry_get"' in line]
    assert entries and entries[-1]["outcome"] == "ok" and entries[-1]["tool"] == "docker"
    assert os.stat(dws.state_dir / "audit.log").st_mode & 0o077 == 0


def test_a_registry_that_refuses_the_exchange_is_one_line_and_the_daemon_lives(ws: Workspace) -> None:
    """An `acr` route to a host that is no registry (the IdP answers 404 at /oauth2/exchange)."""
    em = ws.em
    idp_host = em.idp_base[len("https://"):]
    ws.write_config(ws.federated_account(), [
        {"url": f"https://{idp_host}/", "account": "workspace", "preset": "acr"}])
    ws.start_daemon()
    done = helper(ws, "get", idp_host)
    assert done.returncode == 1 and done.stdout.strip() == "credentials not found in native keychain"
    assert "refused the token exchange (HTTP 404" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert ws.client().ping()


def doctor_checks(ws: Workspace, name: str) -> List[Dict[str, Any]]:
    """The `credhelper doctor --json` findings called ``name``."""
    done = ws.credhelper("doctor", "--json", check=False, cwd=str(ws.root))
    return [c for c in json.loads(done.stdout)["checks"] if c["name"] == name]


def test_doctor_says_when_docker_lacks_the_helper(dws: Workspace) -> None:
    dws.credhelper("configure", "docker", "--remove")
    [found] = doctor_checks(dws, "docker")
    assert found["status"] == "warn" and found["fix"] == "run: credhelper configure docker"
    dws.credhelper("configure", "docker")
    [found] = doctor_checks(dws, "docker")
    assert found["status"] == "ok" and dws.em.registry_host in found["message"]


def test_status_lists_registries_and_when_their_tokens_expire(dws: Workspace) -> None:
    helper(dws, "get", dws.em.registry_host)
    out = dws.credhelper("status").stdout
    assert "registries (docker)" in out
    line = [l for l in out.splitlines() if dws.em.registry_host in l][0]
    assert "refresh token expires" in line and "none yet" not in line
