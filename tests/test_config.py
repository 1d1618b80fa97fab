"""Config validation: every mistake is one line naming file, line and key; nothing secret echoed."""

import re
from pathlib import Path

import pytest

from credhelper import config
from credhelper.config import AZURE_DEVOPS_SCOPE, load, parse
from credhelper.errors import ConfigError

FILE = Path("config.toml")

GOOD = """\
[accounts.work]
authority = "https://login.microsoftonline.com/contoso"
client_id = "11111111-2222-3333-4444-555555555555"
flow = "federated"
assertion_command = ["gp", "idp", "token", "--audience", "api://AzureADTokenExchange"]

[accounts.ci]
oidc_authority = "https://id.contoso.example/tenant"
client_id = "ci-app"
flow = "client_secret"
client_secret_env = "AZURE_CLIENT_SECRET"
ca_bundle = "~/corp-ca.pem"

[[routes]]
url = "https://dev.azure.com/contoso/"
account = "work"
preset = "azure-devops"

[[routes]]
url = "https://pkgs.dev.azure.com/contoso/"
account = "ci"
scopes = ["api://credhelper-feed/.default"]
username = "entra"

[npm]
registries = ["https://pkgs.dev.azure.com/contoso/_packaging/feed/npm/registry/"]
"""


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text, FILE)
    message = info.value.message
    assert "\n" not in message
    return message


def test_good_config_parses(monkeypatch):
    monkeypatch.setenv("HOME", "/home/alice")
    cfg = parse(GOOD, FILE)
    assert set(cfg.accounts) == {"work", "ci"}
    work = cfg.accounts["work"]
    assert work.flow == "federated" and work.assertion_command[:3] == ("gp", "idp", "token")
    assert cfg.accounts["ci"].ca_bundle == "/home/alice/corp-ca.pem"
    assert cfg.accounts["ci"].client_secret_env == "AZURE_CLIENT_SECRET"
    first, second = cfg.routes
    assert first.scopes == (AZURE_DEVOPS_SCOPE,) and first.username == "work"
    assert second.username == "entra" and second.account == "ci"
    assert cfg.npm_registries == ("https://pkgs.dev.azure.com/contoso/_packaging/feed/npm/registry/",)


def test_config_is_frozen():
    cfg = parse(GOOD, FILE)
    with pytest.raises(AttributeError):
        cfg.routes[0].url = "https://evil.example/"  # type: ignore[misc]


def test_missing_file_suggests_init(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.toml: no such file; run `credhelper init`"):
        load(tmp_path / "nope.toml")


def test_load_reads_the_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(GOOD)
    assert load(path).path == path


def test_toml_syntax_error_names_the_line():
    text = GOOD.replace('account = "ci"', 'account = "ci')
    assert re.match(r"config\.toml:21: invalid TOML: Illegal character", error_of(text))


def replace(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new, 1)


@pytest.mark.parametrize("text, expected", [
    (GOOD + "\n[extra]\nx = 1\n", r"config\.toml:28: extra: unknown key"),
    (replace('flow = "federated"', 'flow = "federated"\nclientid = "x"'),
     r":5: accounts\.work\.clientid: unknown key"),
    (replace('username = "entra"', 'username = "entra"\nuser = "x"'),
     r":24: routes\[2\]\.user: unknown key"),
    (replace("registries", "registries = []\nmirrors"), r":27: npm\.mirrors: unknown key"),
    (replace('client_id = "ci-app"\n', ""), r":7: accounts\.ci\.client_id: missing \(required\)"),
    (replace('url = "https://dev.azure.com/contoso/"\n', ""), r":14: routes\[1\]\.url: missing"),
    (replace('account = "ci"', 'account = "nobody"'),
     r':21: routes\[2\]\.account: no account named "nobody" \(accounts: ci, work\)'),
    (replace('url = "https://pkgs', 'url = "http://pkgs'),
     r":20: routes\[2\]\.url: must be an https URL"),
    (replace("https://dev.azure.com/contoso/", "https://dev.azure.com/contoso/?x=1"),
     r":15: routes\[1\]\.url: must not contain a query"),
    (replace("https://dev.azure.com/contoso/", "https://dev.azure.com/contoso/#top"),
     r":15: routes\[1\]\.url: must not contain a query"),
    (replace("https://dev.azure.com/contoso/", "https://dev.azure.com:99999/contoso/"),
     r":15: routes\[1\]\.url: not a usable URL: bad port"),
    (replace('flow = "federated"', 'flow = "magic"'), r":4: accounts\.work\.flow: must be one of"),
    (replace('flow = "federated"\n', ""), r":1: accounts\.work\.flow: missing"),
    (replace('flow = "federated"', 'flow = "federated"\nassertion_file = "/t"'),
     r":1: accounts\.work: flow = \"federated\" needs exactly one of assertion_command"),
    (replace('assertion_command = ["gp", "idp", "token", "--audience", "api://AzureADTokenExchange"]',
             ""), r":1: accounts\.work: flow = \"federated\" needs exactly one of"),
    (replace('assertion_command = ["gp", "idp", "token", "--audience", "api://AzureADTokenExchange"]',
             "assertion_command = []"), r":5: accounts\.work\.assertion_command: must be a non-empty"),
    (replace('assertion_command = ["gp", "idp", "token", "--audience", "api://AzureADTokenExchange"]',
             'assertion_command = "gp idp token"'), r":5: accounts\.work\.assertion_command: must"),
    (replace('client_secret_env = "AZURE_CLIENT_SECRET"\n', ""),
     r":7: accounts\.ci\.client_secret_env: missing"),
    (replace('flow = "federated"', 'flow = "federated"\nclient_secret_env = "X"'),
     r':5: accounts\.work\.client_secret_env: only used with flow = "client_secret"'),
    (replace('flow = "client_secret"', 'flow = "certificate"'),
     r':11: accounts\.ci\.client_secret_env: only used with flow = "client_secret"'),
    (replace('oidc_authority = "https://id.contoso.example/tenant"\n', ""),
     r":7: accounts\.ci: needs exactly one of authority, oidc_authority"),
    (replace('client_id = "ci-app"', 'client_id = "ci-app"\nauthority = "https://login.example/x"'),
     r":7: accounts\.ci: needs exactly one of authority, oidc_authority"),
    (replace("https://login.microsoftonline.com/contoso", "http://login.microsoftonline.com/c"),
     r":2: accounts\.work\.authority: must be an https URL"),
    (replace('preset = "azure-devops"', 'preset = "azure-devops"\nscopes = ["x/.default"]'),
     r":14: routes\[1\]: needs exactly one of scopes, preset"),
    (replace('preset = "azure-devops"\n', ""), r":14: routes\[1\]: needs exactly one of scopes"),
    (replace('preset = "azure-devops"', 'preset = "github"'), r":17: routes\[1\]\.preset: must be"),
    (replace('scopes = ["api://credhelper-feed/.default"]', "scopes = []"),
     r":22: routes\[2\]\.scopes: must be a non-empty list"),
    (replace('scopes = ["api://credhelper-feed/.default"]', 'scopes = ["a b"]'),
     r":22: routes\[2\]\.scopes: must be a non-empty list"),
    (replace('username = "entra"', 'username = "a:b"'), r":23: routes\[2\]\.username: must not"),
    (replace("https://pkgs.dev.azure.com/contoso/_packaging", "https://npm.example/_packaging"),
     r":26: npm\.registries\[1\]: matches no \[\[routes\]\] url"),
    (replace("https://pkgs.dev.azure.com/contoso/_packaging", "http://pkgs.dev.azure.com/contoso/x"),
     r":26: npm\.registries\[1\]: must be an https URL"),
    (replace('registries = ["https://pkgs.dev.azure.com/contoso/_packaging/feed/npm/registry/"]',
             'registries = ["https://pkgs.dev.azure.com/contoso/a/", '
             '"https://pkgs.dev.azure.com/contoso/a/"]'), r":26: npm\.registries\[2\]: listed twice"),
    (GOOD + '\n[[routes]]\nurl = "https://DEV.azure.com/contoso"\naccount = "ci"\npreset = '
            '"azure-devops"\n', r":29: routes\[3\]\.url: same URL as routes\[1\]"),
    (replace("[accounts.ci]", "[accounts.\"c i\"]").replace('account = "ci"', 'account = "c i"'),
     r':7: accounts\."c i": account names use'),
    ("accounts = 3\n", r":1: accounts: must be a table"),
    ("[routes]\nurl = 1\n", r":1: routes: must be an array of tables"),
])
def test_mistakes_name_file_line_and_key(text, expected):
    message = error_of(text)
    assert re.search(expected, message), message
    assert message.startswith("config.toml:")


SECRET_KEYS = ["client_secret", "password", "token", "secret", "private_key", "refresh_token", "PAT"]


@pytest.mark.parametrize("text, expected, secret", [
    *[(replace('client_id = "ci-app"', f'client_id = "ci-app"\n{key} = "hunter2-s3cr3t"'),
       f":10: accounts.ci.{key}: secrets must not be written in this file; name an environment",
       "hunter2") for key in SECRET_KEYS],
    (GOOD + '\n[npm.auth]\ntoken = "npm_abcdef"\n', "npm.auth.token: secrets must not", "npm_abcdef"),
    (replace('"AZURE_CLIENT_SECRET"', '"Zx8Q~real~secret~value"'),
     "accounts.ci.client_secret_env: must be the NAME", "Zx8Q"),
    (replace("https://dev.azure.com/contoso/", "https://me:pat123@dev.azure.com/c/"),
     "routes[1].url: must not contain a user name or password", "pat123"),
], ids=[*SECRET_KEYS, "npm-table", "client_secret_env", "url-userinfo"])
def test_secrets_are_refused_without_echo(text, expected, secret):
    message = error_of(text)
    assert expected in message and secret not in message, message


def test_an_inline_secret_points_at_the_right_keys():
    message = error_of(replace('client_id = "ci-app"', 'client_id = "ci-app"\ntoken = "x"'))
    assert "client_secret_env" in message and "certificate_file" in message


def test_flows_and_their_keys():
    text = """\
[accounts.mi]
flow = "managed_identity"
managed_identity_client_id = "abc"
[accounts.dev]
flow = "device_code"
client_id = "public"
authority = "https://login.microsoftonline.com/organizations"
[accounts.cert]
flow = "certificate"
client_id = "app"
authority = "https://login.microsoftonline.com/t"
certificate_file = "~/sp.pem"
[accounts.fed]
flow = "federated"
client_id = "app"
authority = "https://login.microsoftonline.com/t"
assertion_file = "/var/run/secrets/azure/tokens/azure-identity-token"
"""
    cfg = parse(text, FILE)
    assert cfg.accounts["mi"].client_id == "" and cfg.accounts["mi"].authority is None
    assert cfg.accounts["mi"].managed_identity_client_id == "abc"
    assert cfg.accounts["cert"].certificate_file.endswith("/sp.pem")
    assert not cfg.accounts["cert"].certificate_file.startswith("~")
    assert cfg.accounts["fed"].assertion_file.endswith("azure-identity-token")
    assert cfg.routes == () and cfg.npm_registries == ()
    bad = text.replace('flow = "managed_identity"',
                       'flow = "managed_identity"\nauthority = "https://login.example/t"')
    assert 'accounts.mi.authority: not used with flow = "managed_identity"' in error_of(bad)
    no_cert = text.replace('certificate_file = "~/sp.pem"\n', "")
    assert re.search(r":8: accounts\.cert\.certificate_file: missing", error_of(no_cert))


def test_inline_tables_and_dotted_keys_still_get_a_line():
    text = 'routes = [\n  {url = "https://a.example/", account = "x", preset = "azure-devops"},\n]\n'
    assert error_of(text).startswith("config.toml:1: routes[1].account: no account named")


def test_key_name_quotes_odd_names():
    assert config.key_name(("accounts", "a.b", "flow")) == 'accounts."a.b".flow'
    assert config.key_name(("routes", 0, "url")) == "routes[1].url"  # as the README counts
    assert config.key_name(("routes", 3, "url")) == "routes[4].url"


def test_positions_count_from_one_as_the_readme_shows():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "`config.toml:12: routes[1].url: must be an https URL`" in readme
    first_is_http = GOOD.replace('url = "https://dev.azure.com/contoso/"',
                                 'url = "http://dev.azure.com/contoso/"')
    assert re.match(r"config\.toml:\d+: routes\[1\]\.url: must be an https URL$",
                    error_of(first_is_http))
    twice = GOOD.replace("https://pkgs.dev.azure.com/contoso/\"", "https://dev.azure.com/contoso/\"", 1)
    assert error_of(twice).endswith("routes[2].url: same URL as routes[1]")


def test_the_readme_gives_every_config_key_a_line():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("### Configuration reference", 1)[1].split("\n#", 1)[0]
    rows = {line.split("|")[1].strip().strip("`") for line in section.splitlines()
            if line.startswith("| `")}
    keys = (config._TOP_KEYS | config._ACCOUNT_KEYS | config._ROUTE_KEYS | config._NPM_KEYS)
    assert keys <= rows, sorted(keys - rows)
    assert rows <= keys, sorted(rows - keys)  # no line for a key the file does not accept
