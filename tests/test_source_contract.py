"""One contract, every credential source (keyring's ``BackendBasicTests`` style).

Each kind of account is built against the shared Entra emulator through real MSAL; the same
tests then hold each source to what ``TokenManager`` relies on. A new source kind is one more
entry in ``SOURCES``.
"""

import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator

import msal
import pytest

from auth_stub_idp import make_account
from credhelper.auth import make_source
from credhelper.auth.base import Token
from credhelper.emulator import Emulator
from credhelper.errors import CredhelperError, IdpUnavailable, Throttled

FEED = ("api://credhelper-feed/.default",)


@pytest.fixture(scope="module")
def em(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with Emulator(tmp_path_factory.mktemp("emulator")) as emulator:
        yield emulator


def _account(em: Emulator, **fields: Any) -> Any:
    fields.setdefault("authority", f"{em.idp_base}/{em.tenant}")
    return make_account(ca_bundle=str(em.ca_file), **fields)


def client_secret(em: Emulator, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("EM_SECRET", em.client_secret)
    return make_source(_account(em, flow="client_secret", client_id="secret-app",
                                client_secret_env="EM_SECRET"), msal.SerializableTokenCache(), 5)


def certificate(em: Emulator, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    return make_source(_account(em, flow="certificate", client_id="cert-app",
                                certificate_file=str(em.cert_file)), msal.SerializableTokenCache(), 5)


def federated_file(em: Emulator, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    path = tmp / "workspace-token"
    path.write_text(em.mint_workspace_token())
    return make_source(_account(em, flow="federated", client_id="fed-app", assertion_file=str(path)),
                       msal.SerializableTokenCache(), 5)


def federated_command(em: Emulator, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    (tmp / "gp-token").write_text(em.mint_workspace_token())
    command = (sys.executable, "-c", "import sys; print(open(sys.argv[1]).read())",
               str(tmp / "gp-token"))
    return make_source(_account(em, flow="federated", client_id="fed-app",
                                assertion_command=command), msal.SerializableTokenCache(), 5)


def device_code(em: Emulator, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    source = make_source(_account(em, flow="device_code", client_id="public-app"),
                         msal.SerializableTokenCache(), 5)
    em.idp.approve(source.login_start()["user_code"], user="alice@contoso.com")
    assert source.login_wait(20)["state"] == "done"
    return source


def managed_identity(em: Emulator, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("IDENTITY_ENDPOINT", em.msi_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", em.msi_header)
    return make_source(_account(em, flow="managed_identity", client_id="mi-app"),
                       msal.SerializableTokenCache(), 5)


SOURCES: Dict[str, Callable[[Emulator, Path, pytest.MonkeyPatch], Any]] = {
    f.__name__: f for f in (client_secret, certificate, federated_file, federated_command,
                            device_code, managed_identity)
}


@pytest.fixture(params=sorted(SOURCES))
def source(request: pytest.FixtureRequest, em: Emulator, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    made = SOURCES[request.param](em, tmp_path, monkeypatch)
    yield made
    em.idp.clear_faults()
    close = getattr(made, "close", None)
    if close is not None:
        close()


def test_a_token_for_the_scopes_asked(source: Any, em: Emulator) -> None:
    token = source.acquire(FEED, now=1000.0)
    assert isinstance(token, Token) and isinstance(token.access_token, str)
    assert not any(c in token.access_token for c in "\r\n\0")
    assert em.idp.check_access_token(token.access_token)["aud"] == "api://credhelper-feed"
    assert token.expires_on > 1000.0
    assert token.refresh_on is None or 1000.0 < token.refresh_on < token.expires_on


def test_every_acquire_asks_the_idp_once(source: Any, em: Emulator) -> None:
    # TokenManager holds tokens and decides when to refresh: a source never answers from a cache.
    source.acquire(FEED, now=0.0)
    before = len(em.idp.requests)
    first = source.acquire(FEED, now=0.0)
    second = source.acquire(FEED, now=0.0)
    assert len(em.idp.requests) == before + 2
    assert first.access_token != second.access_token


def test_the_token_and_secrets_stay_out_of_reprs(source: Any, em: Emulator) -> None:
    token = source.acquire(FEED, now=0.0)
    for text in (repr(token), repr(source), str(source)):
        assert token.access_token not in text
        assert em.client_secret not in text


def test_the_account_it_serves_is_kept(source: Any) -> None:
    # The daemon keeps a source across reloads when its account is unchanged.
    assert source.account.name == "work"


@pytest.mark.parametrize("fault, error", [("500", IdpUnavailable), ("429", Throttled)])
def test_idp_trouble_is_our_error_and_passes(source: Any, em: Emulator, fault: str,
                                              error: type) -> None:
    source.acquire(FEED, now=0.0)
    em.idp.fail(fault, retry_after=7 if fault == "429" else None)
    with pytest.raises(error) as caught:
        source.acquire(FEED, now=0.0)
    assert isinstance(caught.value, CredhelperError) and caught.value.code
    assert source.acquire(FEED, now=0.0).access_token  # the next request is not refused from memory
