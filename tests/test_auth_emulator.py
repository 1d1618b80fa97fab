"""Every credential source against the shared Entra emulator, end to end through real MSAL."""

import sys
from typing import Iterator

import msal
import pytest

from auth_stub_idp import make_account
from credhelper.auth import make_source
from credhelper.emulator import Emulator
from credhelper.errors import AuthFailed, IdpUnavailable, NotSignedIn, Throttled

FEED = ("api://credhelper-feed/.default",)


@pytest.fixture(scope="module")
def em(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with Emulator(tmp_path_factory.mktemp("emulator")) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def clean_faults(em: Emulator) -> Iterator[None]:
    yield
    em.idp.clear_faults()


def account(em: Emulator, **fields):
    fields.setdefault("authority", f"{em.idp_base}/{em.tenant}")
    return make_account(ca_bundle=str(em.ca_file), **fields)


def test_client_secret(em, monkeypatch) -> None:
    monkeypatch.setenv("EM_SECRET", em.client_secret)
    source = make_source(account(em, flow="client_secret", client_id="secret-app",
                                 client_secret_env="EM_SECRET"), msal.SerializableTokenCache(), 5)
    before = em.idp.count(client_id="secret-app")
    token = source.acquire(FEED, now=0.0)
    source.acquire(FEED, now=0.0)
    assert em.idp.count(client_id="secret-app") == before + 2
    assert em.idp.check_access_token(token.access_token)["aud"] == "api://credhelper-feed"
    assert token.refresh_on is not None and 0 < token.refresh_on < token.expires_on


def test_certificate(em) -> None:
    source = make_source(account(em, flow="certificate", client_id="cert-app",
                                 certificate_file=str(em.cert_file)),
                         msal.SerializableTokenCache(), 5)
    token = source.acquire(FEED, now=0.0)
    assert em.idp.check_access_token(token.access_token)["appid"] == "cert-app"


def test_federated_with_a_fresh_workspace_token_per_request(em, tmp_path) -> None:
    path = tmp_path / "workspace-token"
    path.write_text(em.mint_workspace_token())
    source = make_source(account(em, flow="federated", client_id="fed-app",
                                 assertion_file=str(path)), msal.SerializableTokenCache(), 5)
    assert source.acquire(FEED, now=0.0).access_token
    stranger = em.mint_workspace_token(subject="workspace:someone-else")
    path.write_text(stranger)  # read afresh: the new subject has no federated credential
    with pytest.raises(AuthFailed, match="AADSTS") as caught:
        source.acquire(FEED, now=0.0)
    assert stranger not in str(caught.value) and "eyJ" not in str(caught.value)


def test_federated_assertion_command(em, tmp_path) -> None:
    script = tmp_path / "gp"
    script.write_text(em.mint_workspace_token())
    command = (sys.executable, "-c", "import sys; print(open(sys.argv[1]).read())", str(script))
    source = make_source(account(em, flow="federated", client_id="fed-app",
                                 assertion_command=command), msal.SerializableTokenCache(), 5)
    assert em.idp.check_access_token(source.acquire(FEED, now=0.0).access_token)


def test_faults_map_to_our_errors(em, monkeypatch) -> None:
    monkeypatch.setenv("EM_SECRET", em.client_secret)
    source = make_source(account(em, flow="client_secret", client_id="secret-app",
                                 client_secret_env="EM_SECRET"), msal.SerializableTokenCache(), 5)
    source.acquire(FEED, now=0.0)
    em.idp.fail("429", retry_after=30)
    with pytest.raises(Throttled) as caught:
        source.acquire(FEED, now=0.0)
    assert caught.value.retry_after == 30.0
    em.idp.fail("500")
    with pytest.raises(IdpUnavailable):
        source.acquire(FEED, now=0.0)
    assert source.acquire(FEED, now=0.0).access_token


def test_device_code_end_to_end(em) -> None:
    cache = msal.SerializableTokenCache()
    source = make_source(account(em, flow="device_code", client_id="public-app"), cache, 5)
    with pytest.raises(NotSignedIn):
        source.acquire(FEED, now=0.0)
    started = source.login_start()
    assert source.login_wait(0)["state"] == "pending"
    em.idp.approve(started["user_code"], user="alice@contoso.com")
    outcome = source.login_wait(20)
    assert outcome == {"state": "done", "user": "alice@contoso.com"}
    token = source.acquire(FEED, now=10.0)
    claims = em.idp.check_access_token(token.access_token)
    assert claims["aud"] == "api://credhelper-feed"
    refreshes = em.idp.count(grant_type="refresh_token")
    source.acquire(FEED, now=20.0)
    assert em.idp.count(grant_type="refresh_token") == refreshes + 1
    em.idp.revoke("alice@contoso.com")
    with pytest.raises(NotSignedIn, match="credhelper login work"):
        source.acquire(FEED, now=30.0)
    source.close()


def test_managed_identity(em, monkeypatch) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", em.msi_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", em.msi_header)
    source = make_source(account(em, flow="managed_identity", client_id="mi-app"),
                         msal.SerializableTokenCache(), 5)
    first = source.acquire(FEED, now=0.0)
    second = source.acquire(FEED, now=0.0)
    assert first.access_token != second.access_token
    assert em.idp.check_access_token(first.access_token)["aud"] == "api://credhelper-feed"
