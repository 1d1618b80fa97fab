"""TOML → validated, frozen configuration (DESIGN §3).

Every problem is one ConfigError line naming file, line and key, for example
``config.toml:12: routes[1].url: must be an https URL`` (array items count from 1, as a person
counts the ``[[routes]]`` tables in the file). Messages never repeat a value that could be a
secret.
"""

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

from . import fasttoml, paths, routing
from .routing import DuplicateRoute, Route
from .errors import AmbiguousRoute, ConfigError, NoRoute, RequestError
from .tomlpos import Locator, PathPart

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

AZURE_DEVOPS_SCOPE = "499b84ac-1321-427f-aa17-267ca6975798/.default"
# Azure Container Registry's audience: the token the daemon trades at the registry's /oauth2/exchange
ACR_SCOPE = "https://containerregistry.azure.net/.default"
PRESETS: Dict[str, Tuple[str, ...]] = {"azure-devops": (AZURE_DEVOPS_SCOPE,), "acr": (ACR_SCOPE,)}
# DESIGN §8a; kept here (not imported from auth.providers) so reading a config loads no HTTP stack.
ASSERTION_PROVIDERS = ("ona", "gitpod", "github_actions", "azure_workload_identity", "auto")
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
FLOWS = ("federated", "device_code", "client_secret", "certificate", "managed_identity")
_FLOW_KEYS = {
    "federated": ("assertion_command", "assertion_file", "assertion_provider",
                  "assertion_audience"),
    "device_code": (),
    "client_secret": ("client_secret_env",),
    "certificate": ("certificate_file",),
    "managed_identity": ("managed_identity_client_id",),
}
_ACCOUNT_KEYS = {"authority", "oidc_authority", "client_id", "flow", "ca_bundle"}.union(
    *_FLOW_KEYS.values())
_ROUTE_KEYS = {"url", "account", "scopes", "preset", "username"}
_AUTHORITY_END = re.compile(r"[/?#]")
_TOP_KEYS = {"accounts", "routes", "npm", "azure"}
_NPM_KEYS = {"registries"}
_AZURE_KEYS = {"account", "scopes"}
_SECRET_KEYS = {
    "secret", "client_secret", "password", "passwd", "token", "access_token", "refresh_token",
    "id_token", "private_key", "api_key", "client_assertion", "assertion", "authtoken",
    "_authtoken", "auth_token", "pat",
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_BARE = re.compile(r"[A-Za-z0-9_\-]+\Z")
_SPACE = re.compile(r"\s")


@dataclass(frozen=True)
class Account:
    """One Entra identity and how to obtain its tokens."""

    name: str
    client_id: str          # "" for managed_identity, which names its identity otherwise
    flow: str
    authority: Optional[str] = None
    oidc_authority: Optional[str] = None
    assertion_command: Optional[Tuple[str, ...]] = None
    assertion_file: Optional[str] = None
    assertion_provider: Optional[str] = None
    assertion_audience: Optional[str] = None     # set (default: the exchange audience) with a provider
    client_secret_env: Optional[str] = None
    certificate_file: Optional[str] = None
    managed_identity_client_id: Optional[str] = None
    ca_bundle: Optional[str] = None


@dataclass(frozen=True)
class AzureIdentity:
    """``[azure]``: the scopes azure-identity may get from the loopback endpoint, as ``account``."""

    account: str
    scopes: Tuple[str, ...]


@dataclass(frozen=True)
class Config:
    """The whole validated configuration file."""

    path: Path
    accounts: Dict[str, Account]
    routes: Tuple[Route, ...]
    npm_registries: Tuple[str, ...]
    azure: Optional["AzureIdentity"] = None


def load(path: Path) -> Config:
    """Read and validate the config file at ``path``."""
    path = Path(os.path.expanduser(str(path)))
    loose = paths.loose_config(path)
    if loose is not None:
        raise ConfigError(loose)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; run `credhelper init` to write one") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse(text, path)


def parse(text: str, path: Path) -> Config:
    """Validate config ``text``; ``path`` is only used to name the file in errors."""
    # The plain TOML configs are made of is read in one fast pass; anything else (and every
    # error, with its line number) is tomllib's.
    doc = fasttoml.loads(text)
    try:
        if doc is None:
            doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"\s*\(at line (\d+), column (\d+)\)", message)
        line = found.group(1) if found else getattr(exc, "lineno", 1)
        if found:
            message = f"{message[:found.start()]} (column {found.group(2)})"
        raise ConfigError(f"{path}:{line}: invalid TOML: {message}") from exc
    except RecursionError as exc:  # tomllib recurses once per level of nesting
        raise ConfigError(f"{path}: invalid TOML: arrays or tables nested too deeply") from exc
    try:
        return _Checker(text, Path(path)).check(doc)
    except RecursionError as exc:
        raise ConfigError(f"{path}: arrays or tables nested too deeply") from exc


def key_name(where: Tuple[PathPart, ...]) -> str:
    """``("routes", 0, "url")`` → ``routes[1].url``; odd names are quoted as TOML quotes them.

    Positions count from 1: "the first [[routes]]" is ``routes[1]`` in every message.
    """
    out = ""
    for part in where:
        if isinstance(part, int):
            out += f"[{part + 1}]"
        else:
            name = part if _BARE.match(part) else '"' + routing.shorten(part, 40) + '"'
            out += ("." if out else "") + name
    return out


class _Checker:
    def __init__(self, text: str, path: Path) -> None:
        self.text = text
        self.path = path
        self.plain_keys: Set[str] = set()

    def fail(self, where: Tuple[PathPart, ...], message: str) -> ConfigError:
        # Line numbers are found only for an error: scanning 10,000 routes' lines costs more
        # than checking them.
        line = Locator(self.text).line(where)
        return ConfigError(f"{self.path}:{line}: {key_name(where)}: {message}")

    def check(self, doc: Dict[str, Any]) -> Config:
        self.no_inline_secrets(doc, ())
        self.known_keys(doc, (), _TOP_KEYS)
        accounts = self.table(doc, ("accounts",))
        parsed = {name: self.account(name, accounts[name]) for name in accounts}
        raw_routes = doc.get("routes", [])
        if not isinstance(raw_routes, list):
            raise self.fail(("routes",), "must be an array of tables ([[routes]])")
        routes = tuple(self.route(i, raw, parsed) for i, raw in enumerate(raw_routes))
        try:
            router = routing.Router(routes)
        except DuplicateRoute as exc:
            raise self.fail(("routes", exc.index, "url"), f"same URL as routes[{exc.first + 1}]") from exc
        npm = self.table(doc, ("npm",))
        self.known_keys(npm, ("npm",), _NPM_KEYS)
        registries = self.registries(npm.get("registries", []), router)
        return Config(self.path, parsed, routes, registries, self.azure(doc, parsed))

    def azure(self, doc: Dict[str, Any], accounts: Dict[str, Account]) -> Optional[AzureIdentity]:
        if "azure" not in doc:
            return None
        where: Tuple[PathPart, ...] = ("azure",)
        raw = self.table(doc, where)
        self.known_keys(raw, where, _AZURE_KEYS)
        account = self.string(raw, where + ("account",), required=True) or ""
        if account not in accounts:
            known = ", ".join(sorted(accounts)) or "none defined"
            raise self.fail(where + ("account",), f"no account named "
                            f"\"{routing.shorten(account, 40)}\" (accounts: {known})")
        if "scopes" not in raw:
            raise self.fail(where, "needs scopes (what the Azure SDKs may ask for)")
        scopes = self.scopes(raw["scopes"], where + ("scopes",))
        for index, scope in enumerate(scopes):
            if not scope.endswith("/.default"):
                raise self.fail(where + ("scopes", index), "must end in /.default (managed "
                                                           "identity endpoints serve resources)")
        return AzureIdentity(account, scopes)

    def no_inline_secrets(self, value: Any, where: Tuple[PathPart, ...]) -> None:
        # Only tables and arrays are descended into, and each key name is judged once: 10,000
        # [[routes]] repeat the same three names.
        if isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, (list, dict)):
                    self.no_inline_secrets(item, where + (index,))
        elif isinstance(value, dict):
            for key, item in value.items():
                if key not in self.plain_keys:
                    lowered = key.lower()
                    if lowered in _SECRET_KEYS or lowered.endswith(("_secret", "_password",
                                                                    "_token")):
                        raise self.fail(where + (key,), (
                            "secrets must not be written in this file; name an environment "
                            "variable with client_secret_env, or a PEM file with certificate_file"))
                    self.plain_keys.add(key)
                if isinstance(item, (list, dict)):
                    self.no_inline_secrets(item, where + (key,))

    def known_keys(self, table: Dict[str, Any], where: Tuple[PathPart, ...], known: set) -> None:
        for key in table:
            if key not in known:
                raise self.fail(where + (key,), f"unknown key (expected one of: "
                                                f"{', '.join(sorted(known))})")

    def table(self, parent: Dict[str, Any], where: Tuple[PathPart, ...]) -> Dict[str, Any]:
        value = parent.get(str(where[-1]), {})
        if not isinstance(value, dict):
            raise self.fail(where, "must be a table")
        return value

    def string(self, table: Dict[str, Any], where: Tuple[PathPart, ...],
               required: bool = False) -> Optional[str]:
        value = table.get(str(where[-1]))
        if value is None:
            if required:
                raise self.fail(where, "missing (required)")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, "must be a non-empty string")
        return value

    def url(self, table: Dict[str, Any], where: Tuple[PathPart, ...],
            required: bool = False) -> Optional[str]:
        value = self.string(table, where, required)
        return None if value is None else self.url_value(value, where)

    def url_value(self, value: Any, where: Tuple[PathPart, ...]) -> str:
        if not isinstance(value, str) or not value.lower().startswith("https://"):
            raise self.fail(where, "must be an https URL")
        authority = _AUTHORITY_END.split(value[len("https://"):], maxsplit=1)[0]
        if "@" in authority:
            raise self.fail(where, "must not contain a user name or password")
        if "?" in value or "#" in value:
            raise self.fail(where, "must not contain a query (?) or fragment (#)")
        try:
            routing.route_target(value)  # remembered: the Router built next needs it too
        except routing.Refused as exc:
            raise self.fail(where, f"not a usable URL: {exc.why}") from exc
        return value

    def file_path(self, table: Dict[str, Any], where: Tuple[PathPart, ...],
                  required: bool = False) -> Optional[str]:
        value = self.string(table, where, required)
        return None if value is None else os.path.expanduser(value)

    def account(self, name: str, raw: Any) -> Account:
        where: Tuple[PathPart, ...] = ("accounts", name)
        if not _NAME.match(name):
            raise self.fail(where, "account names use letters, digits, '_', '.', '-' "
                                   "(at most 64, starting with a letter or digit)")
        if not isinstance(raw, dict):
            raise self.fail(where, "must be a table ([accounts.NAME])")
        self.known_keys(raw, where, _ACCOUNT_KEYS)
        flow = self.string(raw, where + ("flow",), required=True)
        if flow not in FLOWS:
            raise self.fail(where + ("flow",), f"must be one of: {', '.join(FLOWS)}")
        for other, keys in _FLOW_KEYS.items():
            for key in keys:
                if other != flow and key in raw:
                    raise self.fail(where + (key,), f"only used with flow = \"{other}\"")
        client_id = self.string(raw, where + ("client_id",), required=flow != "managed_identity")
        authority = self.url(raw, where + ("authority",))
        oidc_authority = self.url(raw, where + ("oidc_authority",))
        if flow == "managed_identity":
            for key in ("authority", "oidc_authority"):
                if key in raw:
                    raise self.fail(where + (key,), "not used with flow = \"managed_identity\"")
        elif (authority is None) == (oidc_authority is None):
            raise self.fail(where, "needs exactly one of authority, oidc_authority")
        command = self.command(raw, where + ("assertion_command",))
        assertion_file = self.file_path(raw, where + ("assertion_file",))
        provider, audience = self.provider(raw, where)
        if flow == "federated" and [command, assertion_file, provider].count(None) != 2:
            raise self.fail(where, "flow = \"federated\" needs exactly one of "
                                   "assertion_command, assertion_file, assertion_provider")
        secret_env = self.string(raw, where + ("client_secret_env",), flow == "client_secret")
        if secret_env is not None and not _ENV_NAME.match(secret_env):
            raise self.fail(where + ("client_secret_env",), "must be the NAME of an environment "
                            "variable holding the secret, never the secret itself")
        return Account(
            name=name, client_id=client_id or "", flow=flow, authority=authority,
            oidc_authority=oidc_authority, assertion_command=command,
            assertion_file=assertion_file, assertion_provider=provider,
            assertion_audience=audience, client_secret_env=secret_env,
            certificate_file=self.file_path(raw, where + ("certificate_file",),
                                            required=flow == "certificate"),
            managed_identity_client_id=self.string(raw, where + ("managed_identity_client_id",)),
            ca_bundle=self.file_path(raw, where + ("ca_bundle",)),
        )

    def provider(self, raw: Dict[str, Any], where: Tuple[PathPart, ...]
                 ) -> Tuple[Optional[str], Optional[str]]:
        provider = self.string(raw, where + ("assertion_provider",))
        if provider is not None and provider not in ASSERTION_PROVIDERS:
            raise self.fail(where + ("assertion_provider",),
                            f"must be one of: {', '.join(ASSERTION_PROVIDERS)}")
        audience = self.string(raw, where + ("assertion_audience",))
        if audience is not None and provider is None:
            raise self.fail(where + ("assertion_audience",), "only used with assertion_provider")
        if audience is not None and (_SPACE.search(audience) or not audience.isprintable()):
            raise self.fail(where + ("assertion_audience",), "must not contain spaces or "
                                                             "control characters")
        return provider, (audience or EXCHANGE_AUDIENCE) if provider else None

    def command(self, raw: Dict[str, Any], where: Tuple[PathPart, ...]) -> Optional[Tuple[str, ...]]:
        value = raw.get("assertion_command")
        if value is None:
            return None
        if (not isinstance(value, list) or not value
                or not all(isinstance(arg, str) for arg in value) or not value[0].strip()):
            raise self.fail(where, "must be a non-empty list of strings (the program first; "
                                   "it runs without a shell)")
        return (os.path.expanduser(value[0]),) + tuple(value[1:])

    def route(self, index: int, raw: Any, accounts: Dict[str, Account]) -> Route:
        where: Tuple[PathPart, ...] = ("routes", index)
        if not isinstance(raw, dict):
            raise self.fail(where, "must be a table ([[routes]])")
        self.known_keys(raw, where, _ROUTE_KEYS)
        url = self.url(raw, where + ("url",), required=True) or ""
        account = self.string(raw, where + ("account",), required=True) or ""
        if account not in accounts:
            known = ", ".join(sorted(accounts)) or "none defined"
            raise self.fail(where + ("account",), f"no account named "
                            f"\"{routing.shorten(account, 40)}\" (accounts: {known})")
        if ("scopes" in raw) == ("preset" in raw):
            raise self.fail(where, "needs exactly one of scopes, preset")
        if "preset" in raw:
            preset = raw["preset"]
            if preset not in PRESETS:
                raise self.fail(where + ("preset",), f"must be one of: {', '.join(PRESETS)}")
            scopes = PRESETS[preset]
        else:
            scopes = self.scopes(raw["scopes"], where + ("scopes",))
        username = self.string(raw, where + ("username",))
        if username is not None and (":" in username or not username.isprintable()):
            raise self.fail(where + ("username",), "must not contain ':' or control characters")
        return Route(url=url, account=account, scopes=scopes, username=username or account)

    def scopes(self, value: Any, where: Tuple[PathPart, ...]) -> Tuple[str, ...]:
        if (not isinstance(value, list) or not value or not all(
                isinstance(s, str) and s and not _SPACE.search(s) for s in value)):
            raise self.fail(where, "must be a non-empty list of scope strings without spaces")
        return tuple(value)

    def registries(self, value: Any, router: routing.Router) -> Tuple[str, ...]:
        where: Tuple[PathPart, ...] = ("npm", "registries")
        if not isinstance(value, list):
            raise self.fail(where, "must be a list of registry URLs")
        out: List[str] = []
        for index, item in enumerate(value):
            url = self.url_value(item, where + (index,))
            try:
                router.resolve(url)
            except NoRoute as exc:
                raise self.fail(where + (index,), "matches no [[routes]] url") from exc
            except (AmbiguousRoute, RequestError) as exc:
                raise self.fail(where + (index,), "matches routes of different accounts; "
                                                  "add the registry's path") from exc
            if url in out:
                raise self.fail(where + (index,), "listed twice")
            out.append(url)
        return tuple(out)


def registry_hosts(cfg: Config) -> Tuple[str, ...]:
    """Container registries (``host[:port]`` as docker names them): whole-host routes for ACR."""
    hosts = []
    for route in cfg.routes:
        target = routing.route_target(route.url)  # remembered from the load: status asks often
        if ACR_SCOPE in route.scopes and not target.path:
            hosts.append(target.origin[len("https://"):])
    return tuple(dict.fromkeys(hosts))
