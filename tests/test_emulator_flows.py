"""Device code, refresh-token rotation, managed identity and faults, against real MSAL."""

import http.client
import json
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request

import msal
import pytest
import requests

from credhelper.emulator import Emulator, jwt
from credhelper.emulator.faults import Faults

SCOPE = "api://credhelper-feed/.default"


@pytest.fixture(scope="module")
def em(tmp_path_factory):
    with Emulator(tmp_path_factory.mktemp("emulator")) as em:
        yield em


@pytest.fixture(autouse=True)
def own_trust(monkeypatch, em):
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    yield
    em.idp.clear_faults()


def public_app(em):
    return msal.PublicClientApplication(
        "public-app", authority="{}/{}".format(em.idp_base, em.tenant),
        instance_discovery=False, verify=str(em.ca_file))


def claims_of(token):
    return jwt.decode_unverified(token)[1]


def call(em, path, form=None, json_body=None, base=None):
    """POST a form or JSON (GET when neither); returns (status, json body, headers)."""
    data = None
    headers = {}
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
    if json_body is not None:
        data, headers = json.dumps(json_body).encode(), {"Content-Type": "application/json"}
    request = urllib.request.Request((base or em.idp_base) + path, data=data, headers=headers)
    context = ssl.create_default_context(cafile=str(em.ca_file))
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def client_credentials(em, tenant=None):
    return call(em, "/{}/oauth2/v2.0/token".format(tenant or em.tenant), {
        "grant_type": "client_credentials", "client_id": "secret-app",
        "client_secret": em.client_secret, "scope": SCOPE})


def sign_in(em, user="alice@contoso.com"):
    app = public_app(em)
    flow = app.initiate_device_flow(scopes=[SCOPE])
    em.idp.approve(flow["user_code"], user=user)
    return app, app.acquire_token_by_device_flow(flow)


# -- device code ------------------------------------------------------------------------------
def test_device_code_waits_for_approval(em):
    app = public_app(em)
    flow = app.initiate_device_flow(scopes=[SCOPE])
    assert {"device_code", "user_code", "verification_uri", "expires_in", "interval",
            "message"} <= set(flow)
    assert flow["user_code"] in flow["message"]
    polls = em.idp.count(grant_type="urn:ietf:params:oauth:grant-type:device_code")
    seen = threading.Event()

    def approve_after_first_poll():
        while em.idp.count(grant_type="urn:ietf:params:oauth:grant-type:device_code") == polls:
            seen.wait(0.05)
        em.idp.approve(flow["user_code"], user="bob.builder@contoso.com")

    threading.Thread(target=approve_after_first_poll, daemon=True).start()
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result.get("error_description")
    claims = em.idp.check_access_token(result["access_token"])
    assert claims["upn"] == "bob.builder@contoso.com" and claims["name"] == "Bob Builder"
    assert claims["oid"] and claims["aud"] == "api://credhelper-feed"
    assert result["id_token_claims"]["preferred_username"] == "bob.builder@contoso.com"
    assert [r["error"] for r in em.idp.requests if r["grant_type"].endswith("device_code")][-2:] \
        == ["authorization_pending", None]
    assert app.get_accounts()[0]["username"] == "bob.builder@contoso.com"


def test_device_code_denied(em):
    app = public_app(em)
    flow = app.initiate_device_flow(scopes=[SCOPE])
    em.idp.deny(flow["user_code"])
    result = app.acquire_token_by_device_flow(flow)
    assert result["error"] == "access_denied"


def test_device_code_expired(em):
    app = public_app(em)
    flow = app.initiate_device_flow(scopes=[SCOPE])
    em.idp.expire(flow["user_code"])
    assert app.acquire_token_by_device_flow(flow)["error"] == "expired_token"


def test_polling_too_fast_is_slow_down(em):
    status, flow, _ = call(em, "/{}/oauth2/v2.0/devicecode".format(em.tenant),
                           {"client_id": "public-app", "scope": SCOPE + " offline_access"})
    assert status == 200
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "client_id": "public-app", "device_code": flow["device_code"]}
    errors = [call(em, "/{}/oauth2/v2.0/token".format(em.tenant), form)[1]["error"]
              for _ in range(2)]
    assert errors == ["authorization_pending", "slow_down"]


def test_device_code_needs_a_public_client(em):
    status, body, _ = call(em, "/{}/oauth2/v2.0/devicecode".format(em.tenant),
                           {"client_id": "secret-app", "scope": SCOPE})
    assert status == 401 and body["error"] == "invalid_client"


def test_approve_over_http_without_code_takes_newest(em):
    app = public_app(em)
    flow = app.initiate_device_flow(scopes=[SCOPE])
    status, body, _ = call(em, "/_emulator/approve", json_body={"user": "carol@contoso.com"})
    assert status == 200 and body["user_code"] == flow["user_code"]
    result = app.acquire_token_by_device_flow(flow)
    assert claims_of(result["access_token"])["upn"] == "carol@contoso.com"


# -- refresh tokens ---------------------------------------------------------------------------
def test_refresh_token_rotates(em):
    app, first = sign_in(em)
    second = app.acquire_token_by_refresh_token(first["refresh_token"], scopes=[SCOPE])
    assert "access_token" in second and second["refresh_token"] != first["refresh_token"]
    reused = app.acquire_token_by_refresh_token(first["refresh_token"], scopes=[SCOPE])
    assert reused["error"] == "invalid_grant" and reused["error_codes"] == [70008]
    other = app.acquire_token_by_refresh_token(
        second["refresh_token"], scopes=["499b84ac-1321-427f-aa17-267ca6975798/.default"])
    assert claims_of(other["access_token"])["aud"] == "499b84ac-1321-427f-aa17-267ca6975798"


def test_revoked_user_gets_50173(em):
    app, result = sign_in(em, user="dave@contoso.com")
    assert em.idp.revoke("dave@contoso.com") == 1
    refused = app.acquire_token_by_refresh_token(result["refresh_token"], scopes=[SCOPE])
    assert refused["error"] == "invalid_grant" and refused["error_codes"] == [50173]
    _, again = sign_in(em, user="dave@contoso.com")   # signing in again works
    assert "access_token" in again


def test_interaction_required_fault(em):
    app, result = sign_in(em)
    em.idp.fail("interaction_required")
    refused = app.acquire_token_by_refresh_token(result["refresh_token"], scopes=[SCOPE])
    assert refused["error"] == "interaction_required"


# -- managed identity -------------------------------------------------------------------------
def test_managed_identity_with_real_msal(em, monkeypatch):
    monkeypatch.setenv("IDENTITY_ENDPOINT", em.msi_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", em.msi_header)
    for identity in (msal.SystemAssignedManagedIdentity(),
                     msal.UserAssignedManagedIdentity(client_id="mi-app")):
        client = msal.ManagedIdentityClient(identity, http_client=requests.Session(),
                                            token_cache=msal.TokenCache())
        result = client.acquire_token_for_client(resource="api://credhelper-feed")
        assert "access_token" in result, result.get("error_description")
        claims = em.idp.check_access_token(result["access_token"])
        assert claims["aud"] == "api://credhelper-feed" and claims["appid"] == "mi-app"
        assert 3000 < result["expires_in"] <= 5400


def test_managed_identity_wants_the_header(em):
    url = em.msi_endpoint + "?api-version=2019-08-01&resource=api://credhelper-feed"
    request = urllib.request.Request(url, headers={"X-IDENTITY-HEADER": "wrong"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 401


# -- faults -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, status, error", [
    ("500", 500, "server_error"), ("invalid_grant", 400, "invalid_grant"),
    ("invalid_client", 401, "invalid_client"), ("outage", 503, "temporarily_unavailable"),
])
def test_fault_kinds(em, kind, status, error):
    em.idp.fail(kind)
    got, body, _ = client_credentials(em)
    assert (got, body["error"]) == (status, error)
    assert body["error_description"].startswith("AADSTS")
    assert em.idp.requests[-1]["fault"] == kind


def test_fault_times_then_recovery(em):
    em.idp.fail("500", times=2)
    statuses = [client_credentials(em)[0] for _ in range(3)]
    assert statuses == [500, 500, 200]


def test_429_carries_retry_after(em):
    em.idp.fail("429", retry_after=7)
    status, body, headers = client_credentials(em)
    assert status == 429 and headers["Retry-After"] == "7"


def test_outage_until_cleared(em):
    em.idp.fail("outage")
    assert [client_credentials(em)[0] for _ in range(3)] == [503, 503, 503]
    em.idp.clear_faults()
    assert client_credentials(em)[0] == 200


def test_outage_window_ends_by_the_clock():
    now = [100.0]
    faults = Faults(clock=lambda: now[0])
    faults.add("outage", seconds=30)
    assert faults.take().kind == "outage"
    now[0] = 131.0
    assert faults.take() is None


def test_unknown_fault_kind():
    with pytest.raises(ValueError):
        Faults().add("explode")


def test_faults_over_http(em):
    status, _, _ = call(em, "/_emulator/fault", json_body={"kind": "429", "retry_after": 3})
    assert status == 200
    assert client_credentials(em)[0] == 429
    call(em, "/_emulator/fault", json_body={"kind": "outage"})
    call(em, "/_emulator/clear", json_body={})
    assert client_credentials(em)[0] == 200
    status, stats, _ = call(em, "/_emulator/stats")
    assert stats["by_grant_type"]["client_credentials"] >= 2
    assert em.client_secret not in json.dumps(stats)


def test_timeout_holds_one_request_without_blocking_others(tmp_path):
    em = Emulator(tmp_path).start()
    outcome = []

    def held():
        try:
            outcome.append(client_credentials(em)[0])
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError) as exc:
            outcome.append(type(exc).__name__)

    em.idp.fail("timeout", seconds=60)
    thread = threading.Thread(target=held, daemon=True)
    thread.start()
    while em.idp.faults.pending():          # wait until the held request took the fault
        threading.Event().wait(0.02)
    assert client_credentials(em)[0] == 200   # others are served meanwhile
    em.stop()                                 # and stopping releases the held one
    thread.join(10)
    assert not thread.is_alive() and outcome and outcome[0] != 200


def test_short_timeout_drops_the_connection(em):
    em.idp.fail("timeout", seconds=0.2)
    with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
        client_credentials(em)
    assert client_credentials(em)[0] == 200
