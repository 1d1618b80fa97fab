"""Starter configs parse as TOML with the contract's shape; the JWT hint never leaks the token."""

import base64
import json
import sys

import pytest

from credhelper.errors import ConfigError
from credhelper.init_config import federated_credential_hint, render_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "0b4a1c3e-5d6f-4a7b-8c9d-0e1f2a3b4c5d"


def test_azure_devops_with_device_code():
    text = render_config(azure_devops="Contoso", tenant=TENANT, client_id=CLIENT)
    config = tomllib.loads(text)
    assert config["accounts"] == {"work": {
        "authority": f"https://login.microsoftonline.com/{TENANT}",
        "client_id": CLIENT,
        "flow": "device_code",
    }}
    assert config["routes"] == [
        {"url": "https://dev.azure.com/Contoso/", "account": "work", "preset": "azure-devops"},
        {"url": "https://contoso.visualstudio.com/", "account": "work", "preset": "azure-devops"},
        {"url": "https://pkgs.dev.azure.com/Contoso/", "account": "work", "preset": "azure-devops"},
    ]
    assert "npm" not in config  # an example only, commented out
    assert '# registries = ["https://pkgs.dev.azure.com/Contoso/_packaging/FEED/npm/registry/"]' in text
    assert text.startswith("# credhelper configuration")


def test_gitpod_federation():
    config = tomllib.loads(render_config(
        azure_devops="contoso", gitpod=True, tenant="contoso.onmicrosoft.com", client_id=CLIENT))
    account = config["accounts"]["work"]
    assert account["flow"] == "federated"
    assert account["assertion_command"] == ["gp", "idp", "token", "--audience", "api://AzureADTokenExchange"]
    assert account["authority"] == "https://login.microsoftonline.com/contoso.onmicrosoft.com"
    assert len(config["routes"]) == 3


def test_device_code_alone_has_no_routes_yet():
    text = render_config(device_code=True, tenant=TENANT, client_id=CLIENT)
    config = tomllib.loads(text)
    assert config["accounts"]["work"]["flow"] == "device_code"
    assert "routes" not in config
    assert "# [[routes]]" in text


def test_authority_override_for_sovereign_clouds_and_the_emulator():
    config = tomllib.loads(render_config(
        gitpod=True, client_id="fed-app", authority="https://127.0.0.1:8443/contoso/"))
    assert config["accounts"]["work"]["authority"] == "https://127.0.0.1:8443/contoso"


@pytest.mark.parametrize("options, message", [
    ({"tenant": TENANT}, "--client-id is required"),
    ({"client_id": CLIENT}, "--tenant is required"),
    ({"tenant": TENANT, "client_id": CLIENT, "gitpod": True, "device_code": True}, "choose one"),
    ({"tenant": 'x"\n[accounts.evil]', "client_id": CLIENT}, "--tenant"),
    ({"tenant": TENANT, "client_id": CLIENT, "azure_devops": "org/../x"}, "--azure-devops"),
    ({"client_id": CLIENT, "authority": "http://login.example/"}, "--authority"),
])
def test_bad_options_are_clear_errors_not_toml(options, message):
    with pytest.raises(ConfigError, match=message.replace("-", r"\-")):
        render_config(**options)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _jwt(claims: dict) -> str:
    return f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64(claims)}.c2lnbmF0dXJl"


def test_hint_reads_what_an_admin_registers():
    token = _jwt({"iss": "https://api.gitpod.io/idp", "sub": "https://github.com/contoso/app",
                  "aud": ["api://AzureADTokenExchange", "other"], "exp": 1795000000})
    hint = federated_credential_hint(token)
    assert hint == {"issuer": "https://api.gitpod.io/idp", "subject": "https://github.com/contoso/app",
                    "audience": "api://AzureADTokenExchange"}
    assert token not in repr(hint) and token.split(".")[2] not in repr(hint)


def test_hint_with_a_single_audience_string():
    hint = federated_credential_hint(_jwt({"iss": "i", "sub": "s", "aud": "api://x"}))
    assert hint["audience"] == "api://x"


@pytest.mark.parametrize("token", [
    "not-a-jwt",
    "a.b.c.d",
    "eyJhbGciOiJub25lIn0.!!!secret-looking!!!.sig",
    _jwt({"sub": "s", "aud": "a"}),
    _jwt({"iss": "i", "aud": "a"}),
    _jwt({"iss": "i", "sub": "s"}),
    "eyJhbGciOiJub25lIn0." + _b64([1, 2]) + ".sig",
])
def test_a_bad_assertion_is_an_error_that_does_not_repeat_it(token):
    with pytest.raises(ConfigError) as info:
        federated_credential_hint(token)
    message = str(info.value)
    for part in token.split("."):
        if len(part) > 3:
            assert part not in message
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__
