"""``assertion_provider`` (DESIGN §8a): each platform's way of handing out the workspace's identity,
against the emulator's stand-ins, through real MSAL; config keys; errors that name the provider.

The stand-ins serve assertions the way each platform does: a `ona`/`gitpod`/`gp` CLI on PATH, the
Actions runtime's token endpoint behind two variables, AKS's projected token file.
"""

import sys
from pathlib import Path
from typing import Iterator

import msal
import pytest

from auth_stub_idp import make_account
from credhelper import config
from credhelper.auth import make_source
from credhelper.auth.http import HttpClient
from credhelper.auth.providers import PROVIDERS, fetch_assertion, present
from credhelper.emulator import jwt
from credhelper.errors import AuthFailed, ConfigError

FEED = ("api://credhelper-feed/.default",)
AUDIENCE = "api://AzureADTokenExchange"
PLATFORM_VARS = ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                 "AZURE_FEDERATED_TOKEN_FILE")


@pytest.fixture
def bare(monkeypatch, tmp_path) -> Path:
    """No platform here: an empty PATH directory of our own and none of the variables."""
    for var in PLATFORM_VARS:
        monkeypatch.delenv(var, raising=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def fake_cli(bin_dir: Path, name: str, em) -> Path:
    """A `name` on PATH that is the emulator's stand-in for that platform's CLI."""
    path = bin_dir / name
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m credhelper.emulator {name} '
                    f'--dir "{em.workdir}" "$@"\n')
    path.chmod(0o755)
    return path


def claims(token: str) -> dict:
    return jwt.decode_unverified(token)[1]


def source_for(em, client_id: str, **fields):
    account = make_account(flow="federated", client_id=client_id,
                           authority=f"{em.idp_base}/{em.tenant}", ca_bundle=str(em.ca_file),
                           **fields)
    return make_source(account, msal.SerializableTokenCache(), 5)


@pytest.fixture
def http(em) -> Iterator[HttpClient]:
    client = HttpClient(str(em.ca_file), 5)
    yield client
    client.close()


# -- ona / gitpod ------------------------------------------------------------------------------

def test_ona_cli_gives_the_ona_issuer_and_v3_subject(em, bare):
    fake_cli(bare, "ona", em)
    token = fetch_assertion("ona", AUDIENCE)
    assert claims(token)["iss"] == em.workload_issuer("ona")
    assert claims(token)["sub"].startswith("organization_id:")
    assert claims(token)["aud"] == AUDIENCE


def test_ona_falls_back_to_the_older_gitpod_cli(em, bare):
    fake_cli(bare, "gitpod", em)
    assert claims(fetch_assertion("ona"))["iss"] == em.workload_issuer("ona")


def test_gitpod_classic_uses_gp(em, bare):
    fake_cli(bare, "gp", em)
    assert claims(fetch_assertion("gitpod"))["iss"] == em.workspace_issuer


def test_audience_is_passed_to_the_cli(em, bare):
    fake_cli(bare, "ona", em)
    assert claims(fetch_assertion("ona", "api://other-audience"))["aud"] == "api://other-audience"


@pytest.mark.parametrize("provider, words", [
    ("ona", "`ona` or `gitpod`"), ("gitpod", "`gp`"),
    ("github_actions", "ACTIONS_ID_TOKEN_REQUEST_URL"),
    ("azure_workload_identity", "AZURE_FEDERATED_TOKEN_FILE"),
    ("auto", "found none"),
])
def test_an_absent_provider_is_one_line_naming_it(bare, provider, words):
    with pytest.raises(AuthFailed) as caught:
        fetch_assertion(provider)
    message = str(caught.value)
    assert f"assertion_provider {provider}" in message and words in message
    assert "\n" not in message


def test_a_failing_cli_is_named_and_its_output_kept_out(em, bare):
    leaked = em.mint_workload_token("ona")
    (bare / "ona").write_text(f"#!/bin/sh\necho 'boom {leaked}' >&2\nexit 3\n")
    (bare / "ona").chmod(0o755)
    with pytest.raises(AuthFailed) as caught:
        fetch_assertion("ona")
    assert "assertion_provider ona" in str(caught.value) and "exited with 3" in str(caught.value)
    assert leaked not in str(caught.value)


# -- GitHub Actions ------------------------------------------------------------------------------

def test_github_actions_asks_the_runtime_with_the_audience(em, bare, monkeypatch, http):
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", em.actions_request_url)
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", em.actions_request_token)
    token = fetch_assertion("github_actions", AUDIENCE, http)
    assert claims(token)["iss"] == em.workload_issuer("actions")
    assert claims(token)["aud"] == AUDIENCE
    assert em.idp.workload.actions_requests[-1] == {"audience": AUDIENCE, "status": "200"}


def test_github_actions_refused_request_token(em, bare, monkeypatch, http):
    wrong = "not-the-request-token-but-long-enough-to-look-like-one"
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", em.actions_request_url)
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", wrong)
    with pytest.raises(AuthFailed) as caught:
        fetch_assertion("github_actions", AUDIENCE, http)
    assert "assertion_provider github_actions" in str(caught.value)
    assert "HTTP 401" in str(caught.value) and wrong not in str(caught.value)


def test_github_actions_unreachable_is_named(em, bare, monkeypatch, http):
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", "https://127.0.0.1:9/x?api-version=2.0")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", em.actions_request_token)
    with pytest.raises(AuthFailed) as caught:
        fetch_assertion("github_actions", AUDIENCE, http)
    assert "assertion_provider github_actions: cannot reach" in str(caught.value)
    assert em.actions_request_token not in str(caught.value)


# -- AKS workload identity -------------------------------------------------------------------

def test_workload_identity_file_is_read_afresh_every_time(em, bare, monkeypatch, tmp_path):
    path = tmp_path / "azure-identity-token"
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(path))
    first = em.write_federated_token_file(path)
    assert fetch_assertion("azure_workload_identity") == first
    second = em.write_federated_token_file(path)   # the kubelet rotated it
    assert fetch_assertion("azure_workload_identity") == second != first


def test_workload_identity_missing_file_is_named(bare, monkeypatch, tmp_path):
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(tmp_path / "gone"))
    with pytest.raises(AuthFailed, match=r"^assertion_provider azure_workload_identity: "
                                         r"assertion_file .*gone: No such file"):
        fetch_assertion("azure_workload_identity")


# -- auto ----------------------------------------------------------------------------------------

def test_auto_takes_the_first_present_in_design_order(em, bare, monkeypatch, tmp_path):
    path = tmp_path / "token"
    em.write_federated_token_file(path)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(path))
    assert present() == ["azure_workload_identity"]
    assert claims(fetch_assertion("auto"))["iss"] == em.workload_issuer("aks")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", em.actions_request_url)
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", em.actions_request_token)
    fake_cli(bare, "gp", em)
    fake_cli(bare, "ona", em)
    assert present() == ["ona", "gitpod", "github_actions", "azure_workload_identity"]
    assert claims(fetch_assertion("auto"))["iss"] == em.workload_issuer("ona")


# -- through MSAL against the emulator's directory (iss, sub, aud checked as Entra does) -------

@pytest.mark.parametrize("provider, client_id", [
    ("ona", "ona-app"), ("github_actions", "actions-app"),
    ("azure_workload_identity", "aks-app"), ("auto", "aks-app"),
])
def test_each_provider_federates_with_its_app(em, bare, monkeypatch, tmp_path, provider,
                                              client_id):
    fake_cli(bare, "ona", em) if provider == "ona" else None
    if provider == "github_actions":
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", em.actions_request_url)
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", em.actions_request_token)
    if provider in ("azure_workload_identity", "auto"):
        em.write_federated_token_file(tmp_path / "token")
        monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(tmp_path / "token"))
    source = source_for(em, client_id, assertion_provider=provider, assertion_audience=AUDIENCE)
    before = em.idp.count(client_id=client_id)
    token = source.acquire(FEED, now=0.0)
    assert em.idp.check_access_token(token.access_token)["appid"] == client_id
    assert em.idp.count(client_id=client_id) == before + 1


def test_the_directory_refuses_another_platforms_identity(em, bare):
    fake_cli(bare, "ona", em)
    source = source_for(em, "actions-app", assertion_provider="ona",
                        assertion_audience=AUDIENCE)
    with pytest.raises(AuthFailed, match="AADSTS70021"):
        source.acquire(FEED, now=0.0)


def test_a_wrong_audience_is_refused_by_the_directory(em, bare):
    fake_cli(bare, "ona", em)
    source = source_for(em, "ona-app", assertion_provider="ona",
                        assertion_audience="api://not-the-exchange")
    with pytest.raises(AuthFailed, match="AADSTS70021"):
        source.acquire(FEED, now=0.0)


# -- config --------------------------------------------------------------------------------------

BASE = '''[accounts.ci]
authority = "https://login.microsoftonline.com/contoso"
client_id = "app"
flow = "federated"
'''


def test_config_and_the_providers_agree_on_names_and_audience():
    assert config.ASSERTION_PROVIDERS == PROVIDERS
    assert config.EXCHANGE_AUDIENCE == AUDIENCE


@pytest.mark.parametrize("provider", PROVIDERS)
def test_config_accepts_each_provider_with_the_default_audience(provider):
    parsed = config.parse(BASE + f'assertion_provider = "{provider}"\n', Path("c.toml"))
    account = parsed.accounts["ci"]
    assert account.assertion_provider == provider
    assert account.assertion_audience == "api://AzureADTokenExchange"


@pytest.mark.parametrize("extra, message", [
    ('assertion_provider = "jenkins"\n',
     "c.toml:5: accounts.ci.assertion_provider: must be one of: ona, gitpod, github_actions, "
     "azure_workload_identity, auto"),
    ('assertion_audience = "api://x"\nassertion_file = "/t"\n',
     "c.toml:5: accounts.ci.assertion_audience: only used with assertion_provider"),
    ('assertion_provider = "ona"\nassertion_file = "/t"\n',
     "c.toml:1: accounts.ci: flow = \"federated\" needs exactly one of assertion_command, "
     "assertion_file, assertion_provider"),
    ('assertion_provider = "ona"\nassertion_audience = "two words"\n',
     "c.toml:6: accounts.ci.assertion_audience: must not contain spaces or control characters"),
])
def test_config_errors_name_file_line_and_key(extra, message):
    with pytest.raises(ConfigError) as caught:
        config.parse(BASE + extra, Path("c.toml"))
    assert str(caught.value) == message


def test_provider_only_with_federated():
    text = BASE.replace("federated", "device_code") + 'assertion_provider = "auto"\n'
    with pytest.raises(ConfigError, match="only used with flow = \"federated\""):
        config.parse(text, Path("c.toml"))
