"""The emulated IdP against real MSAL: client credentials (secret, certificate, federated)."""

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import msal
import pytest
from cryptography import x509

from credhelper.emulator import Emulator, jwt
from credhelper.emulator.ca import new_key

SCOPE = "api://credhelper-feed/.default"


@pytest.fixture(scope="module")
def em(tmp_path_factory):
    with Emulator(tmp_path_factory.mktemp("emulator")) as em:
        yield em


@pytest.fixture(autouse=True)
def own_trust(monkeypatch, em):
    """requests lets these override MSAL's verify=; the emulator CA must win."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    yield
    em.idp.clear_faults()


def confidential(em, client_id, credential, **kwargs):
    if isinstance(credential, dict) and isinstance(credential.get("client_assertion"), str):
        assertion = credential["client_assertion"]
        credential = {"client_assertion": lambda: assertion}
    kwargs.setdefault("authority", "{}/{}".format(em.idp_base, em.tenant))
    return msal.ConfidentialClientApplication(
        client_id, client_credential=credential, instance_discovery=False,
        verify=str(em.ca_file), **kwargs)


def claims_of(token):
    return jwt.decode_unverified(token)[1]


def post_token(em, form, tenant=None):
    """A raw token request; returns (status, json body, headers)."""
    url = "{}/{}/oauth2/v2.0/token".format(em.idp_base, tenant or em.tenant)
    data = urllib.parse.urlencode(form).encode()
    context = ssl.create_default_context(cafile=str(em.ca_file))
    try:
        with urllib.request.urlopen(url, data=data, context=context, timeout=10) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def test_secret_with_entra_authority(em):
    result = confidential(em, "secret-app", em.client_secret).acquire_token_for_client([SCOPE])
    assert "access_token" in result, result.get("error_description")
    claims = em.idp.check_access_token(result["access_token"])
    assert claims["aud"] == "api://credhelper-feed"
    assert claims["iss"] == "{}/{}/v2.0".format(em.idp_base, em.tenant)
    assert claims["appid"] == "secret-app" and claims["oid"] == em.apps["secret-app"].object_id
    assert claims["tid"] == em.tenant
    assert 3600 <= result["expires_in"] <= 5400
    # MSAL turns refresh_in into refresh_on; check the wire field directly.
    status, body, _ = post_token(em, {"grant_type": "client_credentials", "scope": SCOPE,
                                      "client_id": "secret-app", "client_secret": em.client_secret})
    assert status == 200 and body["refresh_in"] == body["expires_in"] // 2
    assert body["ext_expires_in"] == body["expires_in"] and body["token_type"] == "Bearer"


def test_secret_with_oidc_authority(em):
    app = confidential(em, "secret-app", em.client_secret, authority=None,
                       oidc_authority="{}/{}/v2.0".format(em.idp_base, em.tenant))
    result = app.acquire_token_for_client(["499b84ac-1321-427f-aa17-267ca6975798/.default"])
    assert "access_token" in result, result.get("error_description")
    assert claims_of(result["access_token"])["aud"] == "499b84ac-1321-427f-aa17-267ca6975798"


def test_wrong_secret_is_invalid_client(em):
    result = confidential(em, "secret-app", "not-the-secret").acquire_token_for_client([SCOPE])
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert "not-the-secret" not in json.dumps(em.idp.requests)


def test_unknown_app(em):
    result = confidential(em, "nobody", "x").acquire_token_for_client([SCOPE])
    assert result["error"] == "unauthorized_client" and result["error_codes"] == [700016]


def test_client_credentials_needs_a_default_scope(em):
    status, body, _ = post_token(em, {"grant_type": "client_credentials", "client_id": "secret-app",
                                      "client_secret": em.client_secret,
                                      "scope": "api://credhelper-feed/read"})
    assert status == 400 and body["error"] == "invalid_scope"
    assert body["error_description"].startswith("AADSTS1002012:")


def test_certificate_sha256_and_sha1_thumbprints(em):
    pem = em.cert_file.read_text()
    cert = x509.load_pem_x509_certificate(pem.encode())
    by_cert = confidential(em, "cert-app", {"private_key": pem, "public_certificate": pem})
    result = by_cert.acquire_token_for_client([SCOPE])        # PS256 with x5t#S256
    assert "access_token" in result, result.get("error_description")
    from cryptography.hazmat.primitives import hashes
    by_thumbprint = confidential(em, "cert-app", {
        "private_key": pem, "thumbprint": cert.fingerprint(hashes.SHA1()).hex()})
    result = by_thumbprint.acquire_token_for_client([SCOPE])  # RS256 with x5t
    assert "access_token" in result, result.get("error_description")
    assert claims_of(result["access_token"])["appid"] == "cert-app"


def test_certificate_not_registered(em, tmp_path):
    from credhelper.emulator.ca import self_signed_client_cert
    pem, _ = self_signed_client_cert("intruder")
    result = confidential(em, "cert-app", {"private_key": pem.decode(),
                                           "public_certificate": pem.decode()}
                          ).acquire_token_for_client([SCOPE])
    assert result["error"] == "invalid_client" and result["error_codes"] == [700027]


def test_federated_assertion(em):
    result = confidential(em, "fed-app", {"client_assertion": em.mint_workspace_token()}
                          ).acquire_token_for_client([SCOPE])
    assert "access_token" in result, result.get("error_description")
    assert claims_of(result["access_token"])["appid"] == "fed-app"


def test_federated_assertion_callable(em):
    app = confidential(em, "fed-app", {"client_assertion": lambda: em.mint_workspace_token()})
    assert "access_token" in app.acquire_token_for_client([SCOPE])


@pytest.mark.parametrize("make, code", [
    (lambda em: em.mint_workspace_token(subject="workspace:other"), 70021),
    (lambda em: em.mint_workspace_token(audience="api://something-else"), 70021),
    (lambda em: em.mint_workspace_token(lifetime=-900), 700024),
    (lambda em: jwt.sign({**claims_of(em.mint_workspace_token())}, new_key()), 50013),
], ids=["subject", "audience", "expired", "signature"])
def test_federated_assertion_checked_as_entra_does(em, make, code):
    result = confidential(em, "fed-app", {"client_assertion": make(em)}
                          ).acquire_token_for_client([SCOPE])
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [code]
    assert result["error_description"].startswith("AADSTS{}:".format(code))


def test_request_log_and_count(em):
    before = em.idp.count(grant_type="client_credentials", client_id="secret-app")
    confidential(em, "secret-app", em.client_secret).acquire_token_for_client([SCOPE])
    assert em.idp.count(grant_type="client_credentials", client_id="secret-app") == before + 1
    entry = em.idp.requests[-1]
    assert entry["status"] == 200 and entry["tenant"] == em.tenant and entry["scope"] == SCOPE
    assert em.client_secret not in json.dumps(em.idp.requests)


def test_discovery_documents(em):
    context = ssl.create_default_context(cafile=str(em.ca_file))
    url = "{}/{}/v2.0/.well-known/openid-configuration".format(em.idp_base, "other-tenant")
    with urllib.request.urlopen(url, context=context) as response:
        config = json.loads(response.read())
    assert config["issuer"] == "{}/other-tenant/v2.0".format(em.idp_base)
    with urllib.request.urlopen(config["jwks_uri"], context=context) as response:
        keys = json.loads(response.read())["keys"]
    token = confidential(em, "secret-app", em.client_secret).acquire_token_for_client(
        [SCOPE])["access_token"]
    jwt.verify(token, jwt.public_key_from_jwk(keys[0]))
    with urllib.request.urlopen(em.workspace_issuer + "/.well-known/openid-configuration",
                                context=context) as response:
        ws = json.loads(response.read())
    assert ws["issuer"] == em.workspace_issuer
    with urllib.request.urlopen(ws["jwks_uri"], context=context) as response:
        jwt.verify(em.mint_workspace_token(), jwt.public_key_from_jwk(
            json.loads(response.read())["keys"][0]))


def test_secret_files_are_private(em):
    assert em.cert_file.stat().st_mode & 0o077 == 0
    assert Path(em.workdir, "workspace_issuer.key").stat().st_mode & 0o077 == 0
