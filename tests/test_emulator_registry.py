"""The emulator's ACR-shaped registry and cargo sparse registry, spoken to over HTTPS by hand."""

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Optional, Tuple

import pytest

ACR = "https://containerregistry.azure.net"
NULL_USER = "00000000-0000-0000-0000-000000000000"


def http(em: Any, url: str, data: Optional[Dict[str, str]] = None,
         headers: Optional[Dict[str, str]] = None) -> Tuple[int, Dict[str, str], bytes]:
    """(status, headers, body) of one request, trusting the emulator's CA."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers or {})
    context = ssl.create_default_context(cafile=str(em.ca_file))
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def entra_token(em: Any, audience: str = ACR) -> str:
    token = em.idp.issue(em.tenant, audience, "fed-app")["access_token"]
    em.idp.remember(token)
    return token


def exchange(em: Any, token: str) -> Tuple[int, Dict[str, Any]]:
    status, _, body = http(em, em.registry_base + "/oauth2/exchange", {
        "grant_type": "access_token", "service": em.registry_host, "access_token": token})
    return status, json.loads(body)


def test_v2_challenges_with_realm_and_service(em: Any) -> None:
    status, headers, _ = http(em, em.registry_base + "/v2/demo/hello/manifests/1.0")
    assert status == 401
    assert headers["WWW-Authenticate"] == (
        f'Bearer realm="{em.registry_base}/oauth2/token",service="{em.registry_host}",'
        'scope="repository:demo/hello:pull"')


def test_exchange_then_token_then_manifest(em: Any) -> None:
    status, answer = exchange(em, entra_token(em))
    assert status == 200
    refresh = answer["refresh_token"]
    # docker's way: GET with Basic (null user, refresh token)
    basic = base64.b64encode(f"{NULL_USER}:{refresh}".encode()).decode()
    query = urllib.parse.urlencode({"service": em.registry_host,
                                    "scope": "repository:demo/hello:pull"})
    status, _, body = http(em, f"{em.registry_base}/oauth2/token?{query}",
                           headers={"Authorization": "Basic " + basic})
    assert status == 200
    access = json.loads(body)["token"]
    status, headers, body = http(em, em.registry_base + "/v2/demo/hello/manifests/1.0",
                                 headers={"Authorization": "Bearer " + access})
    assert status == 200
    manifest = json.loads(body)
    assert manifest["schemaVersion"] == 2 and headers["Docker-Content-Digest"].startswith("sha256:")
    # a token for one repository opens no other
    status, _, _ = http(em, em.registry_base + "/v2/other/manifests/1.0",
                        headers={"Authorization": "Bearer " + access})
    assert status == 401


def test_refresh_token_grant_by_post(em: Any) -> None:
    _, answer = exchange(em, entra_token(em))
    status, _, body = http(em, em.registry_base + "/oauth2/token", {
        "grant_type": "refresh_token", "service": em.registry_host,
        "scope": "repository:demo/hello:pull", "refresh_token": answer["refresh_token"]})
    assert status == 200 and json.loads(body)["access_token"]


@pytest.mark.parametrize("audience", ["499b84ac-1321-427f-aa17-267ca6975798", "api://credhelper-feed"])
def test_exchange_refuses_other_audiences(em: Any, audience: str) -> None:
    status, answer = exchange(em, entra_token(em, audience))
    assert status == 401 and answer["errors"][0]["code"] == "UNAUTHORIZED"


def test_exchange_refuses_forged_and_wrong_service(em: Any) -> None:
    assert exchange(em, "not.a.token")[0] == 401
    status, _, _ = http(em, em.registry_base + "/oauth2/exchange", {
        "grant_type": "access_token", "service": "evil.example", "access_token": entra_token(em)})
    assert status == 400


def test_cargo_registry_needs_a_token_and_serves_index_and_crate(em: Any) -> None:
    base = em.cargo_index[len("sparse+"):]
    assert http(em, base + "config.json")[0] == 401
    auth = {"Authorization": "Bearer " + entra_token(em, "499b84ac-1321-427f-aa17-267ca6975798")}
    status, _, body = http(em, base + "config.json", headers=auth)
    config = json.loads(body)
    assert status == 200 and config["auth-required"] is True
    status, _, body = http(em, base + "he/ll/hello-private", headers=auth)
    entry = json.loads(body.splitlines()[0])
    assert status == 200 and entry["vers"] == "1.0.0"
    status, _, crate = http(em, config["dl"] + "/hello-private/1.0.0/download", headers=auth)
    import hashlib
    assert status == 200 and hashlib.sha256(crate).hexdigest() == entry["cksum"]
