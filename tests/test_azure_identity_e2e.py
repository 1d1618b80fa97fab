"""The Azure SDKs: the real azure-identity's DefaultAzureCredential gets tokens from the daemon's
loopback managed-identity endpoint, for the scopes ``[azure]`` allows and no others.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Tuple

import pytest

from credhelper.azure_identity import socket_owner
from harness import Workspace

MANAGEMENT = "https://management.azure.com/.default"
STORAGE = "https://storage.azure.com/.default"

SDK = r"""
import base64, json, sys
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import DefaultAzureCredential
try:
    token = DefaultAzureCredential().get_token(sys.argv[1])
except ClientAuthenticationError as exc:
    print(json.dumps({"error": type(exc).__name__}))
    sys.exit(0)
payload = token.token.split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
print(json.dumps({"aud": claims["aud"], "appid": claims["appid"], "expires_on": token.expires_on}))
"""


@pytest.fixture(scope="module")
def aws(module_ws: Workspace) -> Workspace:
    """A daemon whose [azure] table allows management and storage tokens."""
    module_ws.default_config()
    with module_ws.config_path.open("a") as config:
        config.write(f'\n[azure]\naccount = "workspace"\nscopes = {json.dumps([MANAGEMENT, STORAGE])}\n')
    module_ws.start_daemon()
    return module_ws


def sdk_env(ws: Workspace) -> Dict[str, str]:
    """The workspace environment plus what the daemon's env file exports."""
    env = {k: v for k, v in ws.env.items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_"))}
    for line in (ws.socket.parent / "azure-identity.env").read_text().splitlines():
        name, _, value = line[len("export "):].partition("=")
        env[name] = value
    return env


def sdk(ws: Workspace, scope: str) -> Dict[str, Any]:
    done = ws.run([sys.executable, "-c", SDK, scope], env=sdk_env(ws), check=False, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def raw(ws: Workspace, params: Dict[str, str], header: str = "") -> Tuple[int, Dict[str, Any]]:
    env = sdk_env(ws)
    url = env["IDENTITY_ENDPOINT"] + "?" + urllib.parse.urlencode(params)
    request = urllib.request.Request(url, headers={
        "X-IDENTITY-HEADER": header or env["IDENTITY_HEADER"]})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_env_file_is_private_and_names_a_loopback_endpoint(aws: Workspace) -> None:
    path = aws.socket.parent / "azure-identity.env"
    assert path.stat().st_mode & 0o777 == 0o600
    env = sdk_env(aws)
    assert env["IDENTITY_ENDPOINT"].startswith("http://127.0.0.1:")
    assert len(env["IDENTITY_HEADER"]) >= 32


@pytest.mark.parametrize("scope,audience", [(MANAGEMENT, "https://management.azure.com"),
                                            (STORAGE, "https://storage.azure.com")])
def test_default_azure_credential_gets_allowed_scopes(aws: Workspace, scope: str,
                                                      audience: str) -> None:
    got = sdk(aws, scope)
    assert got["aud"] == audience and got["appid"] == "fed-app"


def test_default_azure_credential_gets_nothing_else(aws: Workspace) -> None:
    # the Azure DevOps scope is routed for git, but [azure] does not list it
    assert sdk(aws, "499b84ac-1321-427f-aa17-267ca6975798/.default") == {
        "error": "ClientAuthenticationError"}
    assert sdk(aws, "https://vault.azure.net/.default") == {"error": "ClientAuthenticationError"}


def test_endpoint_refuses_wrong_header_other_identity_and_bad_version(aws: Workspace) -> None:
    ok = {"api-version": "2019-08-01", "resource": "https://management.azure.com"}
    assert raw(aws, ok)[0] == 200
    assert raw(aws, ok, header="x" * 43)[0] == 401
    assert raw(aws, dict(ok, client_id="someone-else"))[0] == 400
    assert raw(aws, dict(ok, client_id="fed-app"))[0] == 200
    assert raw(aws, dict(ok, **{"api-version": "2017-09-01"}))[0] == 400
    assert raw(aws, dict(ok, resource=""))[0] == 400


@pytest.mark.skipif(os.getuid() != 0 or shutil.which("runuser") is None,
                    reason="needs root and runuser to act as another user")
def test_another_user_is_refused_even_with_the_header(aws: Workspace) -> None:
    env = sdk_env(aws)
    probe = ("import sys, urllib.request, urllib.error\n"
             "r = urllib.request.Request(sys.argv[1], headers={'X-IDENTITY-HEADER': sys.argv[2]})\n"
             "try:\n    print(urllib.request.urlopen(r, timeout=10).status)\n"
             "except urllib.error.HTTPError as e:\n    print(e.code)\n")
    url = env["IDENTITY_ENDPOINT"] + "?api-version=2019-08-01&resource=https://management.azure.com"
    done = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", probe, url,
                           env["IDENTITY_HEADER"]], capture_output=True, text=True, timeout=60,
                          cwd="/")
    assert done.stdout.strip() == "403", done.stderr


def test_socket_owner_reads_the_kernels_table() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname())
    conn, address = server.accept()
    try:
        assert socket_owner(conn.getsockname(), address) == os.getuid()
        assert socket_owner(conn.getsockname(), ("127.0.0.1", 1)) is None
    finally:
        for sock in (conn, client, server):
            sock.close()


def test_audit_records_requests_without_tokens(aws: Workspace) -> None:
    sdk(aws, MANAGEMENT)
    ok = {"api-version": "2019-08-01", "resource": "https://management.azure.com"}
    assert raw(aws, ok, header="y" * 43)[0] == 401
    assert raw(aws, dict(ok, resource="https://vault.azure.net"))[0] == 400
    entries = [json.loads(line) for line in (aws.state_dir / "audit.log").read_text().splitlines()
               if '"azure_token"' in line]
    outcomes = {e["outcome"] for e in entries}
    assert {"ok", "scope_not_allowed", "bad_header"} <= outcomes


def test_configure_azure_lets_a_new_shell_find_the_endpoint(aws: Workspace) -> None:
    bashrc = aws.home / ".bashrc"
    bashrc.write_text("# mine\nexport FOO=1\n")
    out = aws.credhelper("configure", "azure").stdout
    assert "IDENTITY_ENDPOINT" in out
    assert "already configured" in aws.credhelper("configure", "azure").stdout
    env = {k: v for k, v in aws.env.items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_"))}
    script = f". {bashrc} && exec {sys.executable} -c \"$SDK\" {MANAGEMENT}"
    done = aws.run(["bash", "-c", script], env=dict(env, SDK=SDK), check=False, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["aud"] == "https://management.azure.com"
    aws.credhelper("configure", "azure", "--remove")
    assert bashrc.read_text() == "# mine\nexport FOO=1\n"


def test_doctor_finds_the_endpoint(aws: Workspace) -> None:
    done = aws.credhelper("doctor", "--json", check=False, cwd=str(aws.root))
    [found] = [c for c in json.loads(done.stdout)["checks"] if c["name"] == "azure"]
    assert found["status"] == "ok" and "azure-identity.env" in found["message"]
    assert sdk_env(aws)["IDENTITY_HEADER"] not in done.stdout


def test_status_shows_the_endpoint_but_not_the_header(aws: Workspace) -> None:
    out = aws.credhelper("status").stdout
    env = sdk_env(aws)
    assert env["IDENTITY_ENDPOINT"] in out and MANAGEMENT in out
    assert env["IDENTITY_HEADER"] not in out
