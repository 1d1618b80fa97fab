"""Starter configs parse as TOML with the contract's shape; the JWT hint never leaks the token."""

import base64
import json
import sys

import pytest

from credhelper.errors import ConfigError
from credhelper.commands.init import federated_credential_hint, render_config, run_init

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
    ({"tenant": TENANT, "client_id": CLIENT, "urls": ["http://feed.example/"]}, "--url"),
    ({"tenant": TENANT, "client_id": CLIENT, "urls": ['https://x.example/"\n[npm]']}, "--url"),
    ({"tenant": TENANT, "client_id": CLIENT, "urls": ["https://x.example/"],
      "scopes": ["a b"]}, "--scope"),
    ({"tenant": TENANT, "client_id": CLIENT, "scopes": ["api://feed/.default"]}, "give --url"),
    ({"tenant": TENANT, "client_id": CLIENT, "ca_bundle": 'ca.pem"\nflow = "x'}, "--ca-bundle"),
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


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("CREDHELPER_CONFIG", raising=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return tmp_path


def test_run_init_for_gitpod_writes_the_config_and_tells_what_to_register(home):
    token = _jwt({"iss": "https://api.gitpod.io/idp", "sub": "ws:alice/app", "aud": "api://AzureADTokenExchange"})
    gp = home / "bin" / "gp"
    gp.write_text(f"#!/bin/sh\n[ \"$*\" = 'idp token --audience api://AzureADTokenExchange' ] || exit 9\n"
                  f"echo '{token}'\n")
    gp.chmod(0o755)
    out = []
    assert run_init(org="contoso", gitpod=True, tenant=TENANT, client_id=CLIENT, echo=out.append) == 0
    path = home / "config" / "credhelper" / "config.toml"
    assert tomllib.loads(path.read_text())["accounts"]["work"]["flow"] == "federated"
    assert out == [
        f"credhelper: wrote {path}",
        f"credhelper: ask an Entra admin to add a federated credential to app {CLIENT}:",
        "  issuer:   https://api.gitpod.io/idp",
        "  subject:  ws:alice/app",
        "  audience: api://AzureADTokenExchange",
        "credhelper: next, run: credhelper start && credhelper configure all",
    ]
    assert all(part not in "\n".join(out) for part in token.split("."))


def test_run_init_keeps_an_existing_config_unless_forced(home):
    path = home / "config" / "credhelper" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("# mine\n")
    with pytest.raises(ConfigError, match="already exists"):
        run_init(device_code=True, tenant=TENANT, client_id=CLIENT, echo=lambda _: None)
    assert path.read_text() == "# mine\n"
    out = []
    run_init(device_code=True, tenant=TENANT, client_id=CLIENT, force=True, echo=out.append)
    assert tomllib.loads(path.read_text())["accounts"]["work"]["flow"] == "device_code"
    assert out[-1] == ("credhelper: next, run: credhelper start && credhelper configure all && "
                       "credhelper login")


def test_run_init_without_gp_still_writes_and_explains(home):
    out = []
    assert run_init(gitpod=True, tenant=TENANT, client_id=CLIENT, echo=out.append) == 0
    assert "could not read this workspace's identity" in out[1]


def test_any_identity_provider_and_any_url_without_editing_the_file(home):
    """The emulator (or any OIDC-speaking Entra stand-in): authority, its CA and the routes."""
    ca = home / "emulator-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    out = []
    assert run_init(device_code=True, client_id="public-app", echo=out.append,
                    authority="https://127.0.0.1:8443/contoso", ca_bundle=str(ca),
                    urls=["https://localhost:9443/git/", "https://localhost:9443/pypi/"],
                    scopes=["api://credhelper-feed/.default"]) == 0
    path = home / "config" / "credhelper" / "config.toml"
    config = tomllib.loads(path.read_text())
    assert config["accounts"]["work"] == {"authority": "https://127.0.0.1:8443/contoso",
                                          "client_id": "public-app", "flow": "device_code",
                                          "ca_bundle": str(ca)}
    assert config["routes"] == [
        {"url": f"https://localhost:9443/{p}/", "account": "work",
         "scopes": ["api://credhelper-feed/.default"]} for p in ("git", "pypi")]
    assert "configure all" in out[-1]


def test_init_refuses_what_the_daemon_would_refuse_before_writing(home):
    path = home / "config" / "credhelper" / "config.toml"
    with pytest.raises(ConfigError, match="--ca-bundle: no such file"):
        run_init(tenant=TENANT, client_id=CLIENT, ca_bundle=str(home / "missing.pem"),
                 echo=lambda _: None)
    with pytest.raises(ConfigError, match="the daemon would refuse: .*query"):
        run_init(tenant=TENANT, client_id=CLIENT, urls=["https://feed.example/x?y=1"],
                 echo=lambda _: None)
    assert not path.exists()
