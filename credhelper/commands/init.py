"""Starter configs for ``credhelper init``, and what an Entra admin must register for federation.

The rendered text is meant to be read and edited by a person, so it carries comments; every value
put into it is checked against a narrow pattern first, so no option can inject TOML.
"""

import base64
import binascii
import json
import os
import re
import subprocess
from typing import Callable, Dict, List, Optional, Sequence

from .. import paths
from ..atomic import write_atomic
from ..config import parse
from ..errors import ConfigError

ASSERTION_TIMEOUT = 30.0
ASSERTION_LIMIT = 64 * 1024
GITPOD_ASSERTION = ["gp", "idp", "token", "--audience", "api://AzureADTokenExchange"]
FEDERATION_AUDIENCE = "api://AzureADTokenExchange"
ACCOUNT = "work"

_ORG = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,62}\Z")
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}\Z")  # a GUID or a verified domain
_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,127}\Z")
_AUTHORITY = re.compile(r"https://[^\s\"'\\]+\Z")
_SCOPE = re.compile(r"[^\s\"'\\]{1,400}\Z")
_PATH = re.compile(r"[^\x00-\x1f\x7f\"\\]{1,4096}\Z")  # no control characters, quotes or escapes


def _q(value: str) -> str:
    """A TOML basic string (JSON's string syntax is a subset of it for printable text)."""
    return json.dumps(value)


def _check(pattern: "re.Pattern[str]", value: Optional[str], option: str) -> str:
    if not value or not pattern.match(value):
        raise ConfigError(f"{option}: {value!r} is not a valid value" if value else f"{option} is required")
    return value


def render_config(
    azure_devops: Optional[str] = None,
    gitpod: bool = False,
    device_code: bool = False,
    tenant: Optional[str] = None,
    client_id: Optional[str] = None,
    authority: Optional[str] = None,
    ca_bundle: Optional[str] = None,
    urls: Sequence[str] = (),
    scopes: Sequence[str] = (),
    ona: bool = False,
) -> str:
    """A commented starter ``config.toml``: one account, and routes for the chosen presets.

    ``gitpod`` makes the account federated on ``gp idp token``, ``ona`` on the Ona environment's
    identity; otherwise (or with ``device_code``) a person signs in with ``credhelper login``.
    ``authority`` replaces ``https://login.microsoftonline.com/<tenant>`` (a sovereign cloud,
    another IdP, the emulator); ``ca_bundle`` is extra trust for it. Each of ``urls`` becomes a
    route with ``scopes`` (the Azure DevOps preset when none are given).
    """
    if gitpod + device_code + ona > 1:
        raise ConfigError("choose one of --gitpod, --ona and --device-code")
    client_id = _check(_CLIENT_ID, client_id, "--client-id")
    if authority is None:
        authority = "https://login.microsoftonline.com/" + _check(_TENANT, tenant, "--tenant")
    else:
        authority = _check(_AUTHORITY, authority, "--authority").rstrip("/")
    lines = [
        "# credhelper configuration: which identity gets tokens for which URLs.",
        "# Reference: the credhelper README. Check it with: credhelper doctor",
        "",
        f"[accounts.{ACCOUNT}]",
        f"authority = {_q(authority)}",
        f"client_id = {_q(client_id)}",
    ]
    if ca_bundle is not None:
        lines += ["# Extra trust for the authority (a corporate proxy, a private CA).",
                  f"ca_bundle = {_q(_check(_PATH, ca_bundle, '--ca-bundle'))}"]
    lines += _gitpod_account() if gitpod else _ona_account() if ona else _device_code_account()
    if azure_devops:
        lines += _azure_devops_routes(_check(_ORG, azure_devops, "--azure-devops"))
    if urls:
        lines += _url_routes(urls, scopes)
    elif scopes:
        raise ConfigError("--scope applies to the routes of --url; give --url too")
    if not azure_devops and not urls:
        lines += _example_route()
    return "\n".join(lines) + "\n"


def _url_routes(urls: Sequence[str], scopes: Sequence[str]) -> List[str]:
    scope_line = ("scopes = [" + ", ".join(_q(_check(_SCOPE, s, "--scope")) for s in scopes) + "]"
                  if scopes else 'preset = "azure-devops"')
    lines: List[str] = []
    for url in urls:
        lines += ["", "[[routes]]", f"url = {_q(_check(_AUTHORITY, url, '--url'))}",
                  f"account = {_q(ACCOUNT)}", scope_line]
    return lines


def _gitpod_account() -> List[str]:
    return [
        "# The workspace proves who it is with a Gitpod OIDC token; Entra trades it for an access",
        "# token. No secret and no sign-in: the app registration needs a federated credential",
        "# for this workspace's issuer, subject and audience.",
        'flow = "federated"',
        "assertion_command = [" + ", ".join(_q(word) for word in GITPOD_ASSERTION) + "]",
    ]


def _ona_account() -> List[str]:
    return [
        "# The environment proves who it is with its Ona OIDC token (`ona idp token`); Entra",
        "# trades it for an access token. No secret and no sign-in: the app registration needs",
        "# a federated credential for the issuer, subject and audience `credhelper init --ona`",
        "# printed.",
        'flow = "federated"',
        'assertion_provider = "ona"',
    ]


def _device_code_account() -> List[str]:
    return [
        "# A person signs in once with `credhelper login` (device code); the daemon keeps the",
        "# refresh token encrypted in its state dir and renews access tokens from it.",
        'flow = "device_code"',
    ]


def _azure_devops_routes(org: str) -> List[str]:
    urls = [
        f"https://dev.azure.com/{org}/",
        f"https://{org.lower()}.visualstudio.com/",
        f"https://pkgs.dev.azure.com/{org}/",
    ]
    lines = [
        "",
        f"# Azure DevOps organisation {org}: git repos, and the package feeds (pip, npm).",
        '# preset = "azure-devops" stands for the Azure DevOps scope',
        "# (499b84ac-1321-427f-aa17-267ca6975798/.default).",
    ]
    for url in urls:
        lines += ["", "[[routes]]", f"url = {_q(url)}", f"account = {_q(ACCOUNT)}",
                  'preset = "azure-devops"']
    lines += [
        "",
        "# npm has no credential helper: the daemon keeps the token for these registries in",
        "# ~/.npmrc (a managed block). Uncomment and name your feed.",
        "# [npm]",
        f'# registries = ["https://pkgs.dev.azure.com/{org}/_packaging/FEED/npm/registry/"]',
    ]
    return lines


def _example_route() -> List[str]:
    return [
        "",
        "# Add one [[routes]] table per place that should get this account's tokens:",
        "# [[routes]]",
        '# url = "https://dev.azure.com/contoso/"',
        f'# account = "{ACCOUNT}"',
        '# preset = "azure-devops"       # or: scopes = ["api://my-feed/.default"]',
    ]


def federated_credential_hint(token: str) -> Dict[str, str]:
    """The issuer, subject and audience an Entra admin registers to trust this assertion.

    The JWT is decoded locally and not verified: it is only read to tell a person what to
    register. Neither the result nor any error contains the token.
    """
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise ConfigError("the assertion is not a JWT (expected three dot-separated parts)")
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise ConfigError("the assertion's claims are not base64url-encoded JSON") from None
    if not isinstance(claims, dict):
        raise ConfigError("the assertion's claims are not a JSON object")
    hint = {}
    for claim, key in (("iss", "issuer"), ("sub", "subject")):
        value = claims.get(claim)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"the assertion has no {claim!r} claim")
        hint[key] = value
    audiences = claims.get("aud")
    if isinstance(audiences, str):
        audiences = [audiences]
    if not isinstance(audiences, list) or not audiences:
        raise ConfigError("the assertion has no 'aud' claim")
    # Entra only accepts the exchange audience; point at it when the token carries several.
    hint["audience"] = FEDERATION_AUDIENCE if FEDERATION_AUDIENCE in audiences else str(audiences[0])
    return hint


def run_init(
    org: Optional[str] = None, gitpod: bool = False, device_code: bool = False,
    tenant: Optional[str] = None, client_id: Optional[str] = None, force: bool = False,
    echo: Callable[[str], None] = print, authority: Optional[str] = None,
    ca_bundle: Optional[str] = None, urls: Sequence[str] = (), scopes: Sequence[str] = (),
    ona: bool = False, advice: Optional[Callable[[], List[str]]] = None,
) -> int:
    """``credhelper init``: write the starter config; when federated, say what to register.

    ``advice`` tells what to register for a platform other than Gitpod (``init_ona``).
    """
    if ca_bundle is not None:
        ca_bundle = os.path.abspath(os.path.expanduser(ca_bundle))
        if not os.path.isfile(ca_bundle):
            raise ConfigError(f"--ca-bundle: no such file: {ca_bundle}")
    text = render_config(azure_devops=org, gitpod=gitpod, device_code=device_code,
                         tenant=tenant, client_id=client_id, authority=authority,
                         ca_bundle=ca_bundle, urls=urls, scopes=scopes, ona=ona)
    path = paths.config_path()
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists; add --force to replace it")
    try:  # a --url the daemon would refuse is refused now, before anything is written
        parse(text, path)
    except ConfigError as exc:
        raise ConfigError(f"the options make a config the daemon would refuse: "
                          f"{exc.message.split(': ', 1)[-1]}") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode("utf-8"), 0o600)
    echo(f"credhelper: wrote {path}")
    if gitpod or ona:
        told = _federation_advice(str(client_id)) if gitpod else advice() if advice else []
        for line in told:
            echo(line)
        echo("credhelper: next, run: credhelper start && credhelper configure all")
    else:
        echo("credhelper: next, run: credhelper start && credhelper configure all && "
             "credhelper login")
    return 0


def _federation_advice(client_id: str) -> List[str]:
    """What to register on the app, read from this workspace's own ``gp idp token``."""
    try:
        result = subprocess.run(
            GITPOD_ASSERTION, stdin=subprocess.DEVNULL, capture_output=True,
            timeout=ASSERTION_TIMEOUT,
        )
        if result.returncode != 0 or len(result.stdout) > ASSERTION_LIMIT:
            raise ConfigError("gp idp token failed")
        hint = federated_credential_hint(result.stdout.decode("ascii", "replace"))
    except (OSError, subprocess.TimeoutExpired, ConfigError):
        return [
            "credhelper: could not read this workspace's identity (is `gp` here?); in a Gitpod",
            "  workspace, `credhelper init --gitpod` prints the issuer and subject to register.",
        ]
    return [
        f"credhelper: ask an Entra admin to add a federated credential to app {client_id}:",
        f"  issuer:   {hint['issuer']}",
        f"  subject:  {hint['subject']}",
        f"  audience: {hint['audience']}",
    ]
