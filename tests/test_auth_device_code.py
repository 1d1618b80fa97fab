"""Device-code sign-in and refresh-token acquisition, and managed identity, through real MSAL."""

import json
import threading

import msal
import pytest

from auth_stub_idp import StubIdp, make_account
from harness import wait_for
from credhelper.auth import make_source
from credhelper.errors import AuthFailed, IdpUnavailable, LoginFailed, NotSignedIn, Throttled

SCOPES = ("499b84ac-1321-427f-aa17-267ca6975798/.default",)


@pytest.fixture
def cache() -> msal.SerializableTokenCache:
    return msal.SerializableTokenCache()


@pytest.fixture
def source(idp: StubIdp, cache: msal.SerializableTokenCache):
    account = make_account(flow="device_code", client_id="public-app", authority=idp.authority,
                           ca_bundle=str(idp.ca_file))
    src = make_source(account, cache, http_timeout=5)
    yield src
    src.close()


def sign_in(idp: StubIdp, source, user: str = "alice@contoso.com") -> dict:
    started = source.login_start()
    assert started["user_code"] == idp.device["user_code"]
    assert source.login_wait(0.01)["state"] == "pending"
    idp.approve(user)
    return source.login_wait(15)


def test_not_signed_in_until_login(idp, source) -> None:
    with pytest.raises(NotSignedIn, match="run credhelper login work"):
        source.acquire(SCOPES, now=0.0)
    assert source.signed_in() is None
    assert idp.count() == 0


def test_sign_in_then_every_acquire_uses_the_refresh_token(idp, source, cache) -> None:
    started = source.login_start()
    assert set(started) == {"user_code", "verification_uri", "expires_at", "message"}
    assert "device_code" not in str(started)
    idp.approve("alice@contoso.com")
    assert source.login_wait(15) == {"state": "done", "user": "alice@contoso.com"}
    assert source.login_wait(0) == {"state": "done", "user": "alice@contoso.com"}
    first = source.acquire(SCOPES, now=100.0)
    second = source.acquire(SCOPES, now=200.0)
    assert idp.count("refresh_token") == 2
    assert first.access_token != second.access_token
    assert (first.expires_on, first.refresh_on) == (3700.0, 1900.0)
    assert idp.requests[-1]["form"]["scope"].split()[0] == SCOPES[0]
    # The persistent cache keeps the refresh token, never an access token.
    state = cache.serialize()
    assert first.access_token not in state and second.access_token not in state
    assert json.loads(state)["RefreshToken"] and not json.loads(state)["AccessToken"]
    assert source.signed_in()["username"] == "alice@contoso.com"


def test_sign_in_survives_a_new_source_on_the_same_cache(idp, source, cache) -> None:
    assert sign_in(idp, source)["state"] == "done"
    restored = msal.SerializableTokenCache()
    restored.deserialize(cache.serialize())
    account = make_account(flow="device_code", client_id="public-app", authority=idp.authority,
                           ca_bundle=str(idp.ca_file))
    assert make_source(account, restored, 5).acquire(SCOPES, now=0.0).access_token in idp.issued


def test_revoked_refresh_token_means_not_signed_in(idp, source) -> None:
    assert sign_in(idp, source)["state"] == "done"
    idp.revoked = True
    with pytest.raises(NotSignedIn, match="account 'work' needs sign-in") as caught:
        source.acquire(SCOPES, now=0.0)
    assert not any(token in str(caught.value) for token in idp.issued)


def test_a_dead_refresh_token_is_forgotten_one_asking_for_mfa_is_kept(idp, source, cache) -> None:
    assert sign_in(idp, source)["state"] == "done"
    idp.script.append(("error", "invalid_grant", 50076, "AADSTS50076: MFA required",
                       "basic_action"))
    with pytest.raises(NotSignedIn):
        source.acquire(SCOPES, now=0.0)
    assert source.signed_in()["username"] == "alice@contoso.com"  # good for other scopes
    assert source.acquire(SCOPES, now=0.0).access_token in idp.issued
    idp.revoked = True
    with pytest.raises(NotSignedIn):
        source.acquire(SCOPES, now=0.0)
    assert source.signed_in() is None  # status: sign-in needed
    assert not json.loads(cache.serialize())["RefreshToken"]


def test_denied_and_cancelled_sign_ins_fail_with_a_reason(idp, source) -> None:
    source.login_start()
    idp.deny()
    outcome = source.login_wait(15)
    assert (outcome["state"], outcome["error"]) == ("failed", "access_denied")
    source.login_start()
    source.login_cancel()
    outcome = source.login_wait(5)
    assert (outcome["state"], outcome["error"]) == ("failed", "cancelled")
    with pytest.raises(NotSignedIn):
        source.acquire(SCOPES, now=0.0)


def test_login_wait_without_login(source) -> None:
    assert source.login_wait(0)["state"] == "failed"


def test_logout_forgets_the_user(idp, source, cache) -> None:
    assert sign_in(idp, source)["state"] == "done"
    assert source.logout() is True
    assert source.signed_in() is None
    assert not any(token in cache.serialize() for token in idp.issued)
    with pytest.raises(NotSignedIn):
        source.acquire(SCOPES, now=0.0)
    assert source.logout() is False


def test_signed_in_needs_no_network_and_no_wait_on_a_refresh(idp, source, cache) -> None:
    """status asks signed_in: an unreachable IdP or a refresh stuck on the network must not
    keep it from answering what the cache knows."""
    assert sign_in(idp, source)["state"] == "done"
    restored = msal.SerializableTokenCache()
    restored.deserialize(cache.serialize())
    down = make_account(flow="device_code", client_id="public-app",
                        authority=idp.authority.replace(f":{idp.server.server_address[1]}", ":1"),
                        ca_bundle=str(idp.ca_file))
    after_restart = make_source(down, restored, 1)  # nothing listens on port 1
    try:
        assert after_restart.signed_in()["username"] == "alice@contoso.com"
    finally:
        after_restart.close()
    idp.script.append(("hang", 5))
    refreshing = threading.Thread(target=lambda: pytest.raises(IdpUnavailable, source.acquire,
                                                               SCOPES, 0.0))
    before = idp.count("refresh_token")
    refreshing.start()
    assert wait_for(lambda: idp.count("refresh_token") > before)
    assert source.signed_in()["username"] == "alice@contoso.com"
    assert refreshing.is_alive()  # answered while the refresh still waits on the IdP
    refreshing.join(15)


def test_a_code_approved_just_after_a_cancel_signs_nobody_in(idp, source) -> None:
    """MSAL polls once more after its sleep whatever the exit condition says; that poll may
    find the code approved. Ctrl-C means nobody new is signed in all the same."""
    device = "urn:ietf:params:oauth:grant-type:device_code"
    source.login_start()
    assert wait_for(lambda: idp.count(device) >= 1)  # pending; MSAL now sleeps a second
    source.login_cancel()
    idp.approve("mallory@contoso.com")
    assert wait_for(lambda: not any(t.name == "credhelper-login-work"
                                    for t in threading.enumerate()))
    # Usually one poll follows the cancel and finds the code approved (the case this is about);
    # on a slow machine MSAL may see the cancel first and not poll again. Either way:
    assert source.signed_in() is None
    assert source.login_wait(0)["error"] == "cancelled"
    with pytest.raises(NotSignedIn):
        source.acquire(SCOPES, now=0.0)


def test_refresh_failures_keep_their_kind(idp, source) -> None:
    assert sign_in(idp, source)["state"] == "done"
    idp.script.extend([("429", 7), ("500",)])
    with pytest.raises(Throttled) as caught:
        source.acquire(SCOPES, now=0.0)
    assert caught.value.retry_after == 7.0
    with pytest.raises(IdpUnavailable):
        source.acquire(SCOPES, now=0.0)
    assert source.acquire(SCOPES, now=0.0).access_token in idp.issued


def test_device_flow_start_failures(idp, source) -> None:
    with pytest.raises(NotSignedIn):  # the first use discovers the authority
        source.acquire(SCOPES, now=0.0)
    idp.script.append(("500",))
    with pytest.raises(IdpUnavailable):
        source.login_start()
    idp.script.append(("error", "invalid_client", 700016, "AADSTS700016: app not found"))
    with pytest.raises(LoginFailed, match="AADSTS700016 invalid_client"):
        source.login_start()


# --- managed identity --------------------------------------------------------------------

def test_managed_identity_reaches_the_endpoint_each_time(idp, monkeypatch, cache) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{idp.base}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", idp.msi_header)
    account = make_account(flow="managed_identity", client_id="mi-app",
                           managed_identity_client_id="11111111-2222-3333-4444-555555555555",
                           ca_bundle=str(idp.ca_file))
    source = make_source(account, cache, 5)
    first = source.acquire(("api://credhelper-feed/.default",), now=50.0)
    second = source.acquire(("api://credhelper-feed/.default",), now=60.0)
    calls = [r for r in idp.requests if r["path"] == "/msi/token"]
    assert len(calls) == 2 and first.access_token != second.access_token
    assert calls[0]["query"]["resource"] == "api://credhelper-feed"
    assert calls[0]["query"]["client_id"] == "11111111-2222-3333-4444-555555555555"
    assert 50.0 + 3500 < first.expires_on <= 50.0 + 3600
    idp.script.append(("429", 3))
    with pytest.raises(Throttled):
        source.acquire(("api://credhelper-feed/.default",), now=0.0)
    with pytest.raises(AuthFailed, match="exactly one scope"):
        source.acquire(("a/.default", "b/.default"), now=0.0)


def test_system_assigned_identity_sends_no_client_id(idp, monkeypatch, cache) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{idp.base}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", idp.msi_header)
    account = make_account(flow="managed_identity", client_id="mi-app",
                           ca_bundle=str(idp.ca_file))
    make_source(account, cache, 5).acquire(("https://vault.azure.net/.default",), now=0.0)
    query = idp.requests[-1]["query"]
    assert query["resource"] == "https://vault.azure.net" and "client_id" not in query
