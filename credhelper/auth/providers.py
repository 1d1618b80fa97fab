"""Where a workspace's own identity comes from (DESIGN §8a): ``assertion_provider``.

    ona                      ona idp token --audience AUD   (gitpod idp token where only that CLI is)
    gitpod                   gp idp token --audience AUD    (Gitpod Classic and Dedicated)
    github_actions           GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=AUD, bearer
                             $ACTIONS_ID_TOKEN_REQUEST_TOKEN, JSON {"value": JWT}
    azure_workload_identity  the file named by $AZURE_FEDERATED_TOKEN_FILE (AKS), read afresh
    auto                     the first of the above that is present

Everything is looked up at each call, never cached: a CI runner's variables or a rotated token
file take effect on the next refresh. Every failure is one ``AuthFailed`` line that names the
provider; neither the assertion nor the Actions request token ever appears in it.
"""

import json
import os
import shutil
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import quote

from ..errors import AuthFailed, CredhelperError
from .assertion import clean_assertion, excerpt, read_assertion_file, run_assertion_command
from .http import HttpClient

EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
PROVIDERS = ("ona", "gitpod", "github_actions", "azure_workload_identity", "auto")
ACTIONS_URL = "ACTIONS_ID_TOKEN_REQUEST_URL"
ACTIONS_TOKEN = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
TOKEN_FILE = "AZURE_FEDERATED_TOKEN_FILE"
_ONA_CLIS = ("ona", "gitpod")
# what each provider needs, in words (doctor, errors)
WHERE = {
    "ona": "`ona` or `gitpod` CLI on PATH", "gitpod": "`gp` CLI on PATH",
    "github_actions": f"{ACTIONS_URL} and {ACTIONS_TOKEN}",
    "azure_workload_identity": f"{TOKEN_FILE}",
}
_REPLY_LIMIT = 64 * 1024


def _cli(provider: str, names: Tuple[str, ...], audience: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            try:
                return run_assertion_command([path, "idp", "token", "--audience", audience])
            except AuthFailed as exc:
                raise AuthFailed(f"assertion_provider {provider}: {exc.message}") from exc
    wanted = " or ".join(f"`{n}`" for n in names)
    raise AuthFailed(f"assertion_provider {provider}: no {wanted} command on PATH "
                     f"(is this a {'Gitpod' if provider == 'gitpod' else 'Ona'} environment?)")


def ona(audience: str, http: Optional[HttpClient] = None) -> str:
    """Ona's environment token: ``ona idp token``, else the older ``gitpod idp token``."""
    return _cli("ona", _ONA_CLIS, audience)


def gitpod(audience: str, http: Optional[HttpClient] = None) -> str:
    """Gitpod Classic's workspace token: ``gp idp token``."""
    return _cli("gitpod", ("gp",), audience)


def github_actions(audience: str, http: Optional[HttpClient] = None) -> str:
    """The job's OIDC token from the Actions runtime (needs ``permissions: id-token: write``)."""
    where = "assertion_provider github_actions"
    url, bearer = os.environ.get(ACTIONS_URL, ""), os.environ.get(ACTIONS_TOKEN, "")
    if not url or not bearer:
        raise AuthFailed(f"{where}: {ACTIONS_URL} and {ACTIONS_TOKEN} are not set (give the "
                         "job `permissions: id-token: write`)")
    if not url.lower().startswith("https://"):
        raise AuthFailed(f"{where}: {ACTIONS_URL} is not an https URL")
    # The runtime's URL already carries ?api-version=...; the audience is appended to it.
    full = url + ("&" if "?" in url else "?") + "audience=" + quote(audience, safe="")
    owned = http is None
    client = http or HttpClient()
    try:
        resp = client.get(full, headers={"Authorization": "Bearer " + bearer,
                                         "Accept": "application/json"})
        body = resp.content[:_REPLY_LIMIT + 1]
    except CredhelperError as exc:  # unreachable, 5xx, 429: keep the kind, so backoff applies
        raise type(exc)(f"{where}: {exc.message}", retry_after=exc.retry_after) from exc
    finally:
        if owned:
            client.close()
    if resp.status_code != 200:
        raise AuthFailed(f"{where}: the token request answered HTTP {resp.status_code}: "
                         f"{excerpt(body)}")
    try:
        value = json.loads(body.decode("utf-8")).get("value")
    except (ValueError, AttributeError):
        value = None
    if not isinstance(value, str):
        raise AuthFailed(f"{where}: the answer is not JSON with a \"value\" string")
    return clean_assertion(value.encode("ascii", "replace"), where)


def azure_workload_identity(audience: str, http: Optional[HttpClient] = None) -> str:
    """The projected service-account token AKS keeps fresh in ``$AZURE_FEDERATED_TOKEN_FILE``."""
    path = os.environ.get(TOKEN_FILE, "")
    if not path:
        raise AuthFailed(f"assertion_provider azure_workload_identity: {TOKEN_FILE} is not set "
                         "(is the pod labelled azure.workload.identity/use=true?)")
    try:
        return read_assertion_file(path)
    except AuthFailed as exc:
        raise AuthFailed(f"assertion_provider azure_workload_identity: {exc.message}") from exc


Fetch = Callable[[str, Optional[HttpClient]], str]
_FETCH: Dict[str, Fetch] = {
    "ona": ona, "gitpod": gitpod, "github_actions": github_actions,
    "azure_workload_identity": azure_workload_identity,
}


def present() -> List[str]:
    """The providers whose CLI, variables or file are here, in ``auto``'s order."""
    found = []
    if any(shutil.which(name) for name in _ONA_CLIS):
        found.append("ona")
    if shutil.which("gp"):
        found.append("gitpod")
    if os.environ.get(ACTIONS_URL) and os.environ.get(ACTIONS_TOKEN):
        found.append("github_actions")
    if os.environ.get(TOKEN_FILE):
        found.append("azure_workload_identity")
    return found


def resolve(provider: str) -> str:
    """The concrete provider ``provider`` stands for now (``auto`` picks the first present)."""
    if provider != "auto":
        return provider
    found = present()
    if not found:
        raise AuthFailed("assertion_provider auto: found none of: `ona`/`gitpod` or `gp` on "
                         f"PATH, {ACTIONS_URL} + {ACTIONS_TOKEN}, {TOKEN_FILE}")
    return found[0]


def fetch_assertion(provider: str, audience: str = EXCHANGE_AUDIENCE,
                    http: Optional[HttpClient] = None) -> str:
    """A fresh assertion from ``provider`` for ``audience``; AuthFailed naming it otherwise."""
    concrete = resolve(provider)
    fetch = _FETCH.get(concrete)
    if fetch is None:
        raise AuthFailed(f"assertion_provider {provider!r} is not one of: {', '.join(PROVIDERS)}")
    return fetch(audience, http)
