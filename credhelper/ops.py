"""One function per socket op, each given the :class:`Core` it works on.

Nothing here imports the daemon: the daemon hands in what an op may trigger (``reload``,
``stop``) as callables. ``get`` is the hot path and knows whether it may wait: the accept loop
calls it with ``may_wait=False`` and gets None whenever answering would need a lock, the
network or an error reply, and the request then goes to a worker, which calls it again.
"""

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import __version__
from .acr import NULL_USER, RegistryTokens
from .clock import SystemClock
from .config import ACR_SCOPE, Config, Route, registry_hosts
from .errors import AuthFailed, CredhelperError, NoRoute, RequestError
from .listener import Peer
from .logs import AuditLog
from .msal_cache import Sessions
from .routing import Router, canonical, redact_url
from .sinks.keeper import SinkKeeper
from .tokens import TokenManager

Reply = Dict[str, Any]
Op = Callable[["Core", Dict[str, Any], Peer], Optional[Reply]]

_UNSAFE = ("\r", "\n", "\0")
ROUTE_MEMO = 4096  # URLs whose route is remembered: more than a monorepo's remotes in rotation


@dataclass
class Core:
    """What the ops work on; the daemon swaps ``config`` and ``router`` on reload."""

    config: Config
    router: Router
    tokens: TokenManager
    sessions: Sessions
    sinks: SinkKeeper
    audit: AuditLog
    keystore: Any
    config_path: Path
    socket_path: Path
    state_dir: Path
    reload: Callable[[], None]
    stop: Callable[[], None]
    started: float = field(default_factory=time.time)
    reload_error: Optional[str] = None
    # container registry refresh tokens, memory only (the daemon hands in one on its own clock)
    registries: RegistryTokens = field(default_factory=lambda: RegistryTokens(SystemClock()))
    azure: Any = None                    # the Azure SDKs' loopback endpoint, when [azure] is set
    # A memo of URL -> route, least recently used out first (a git fetch asks for the same URL
    # over and over); tied to the router it came from, so a reload empties it.
    _routes: Tuple[Optional[Router], "OrderedDict[str, Route]"] = field(
        default=(None, OrderedDict()), repr=False)
    _routes_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def route(self, url: str) -> Route:
        """The route for ``url``, remembered while the router stays the same."""
        router = self.router
        with self._routes_lock:  # the accept loop and workers share it
            if self._routes[0] is not router:
                self._routes = (router, OrderedDict())
            memo = self._routes[1]
            route = memo.get(url)
            if route is not None:
                memo.move_to_end(url)
                return route
        route = router.resolve(url)  # outside the lock: a refusal may take a while to explain
        with self._routes_lock:
            if self._routes[0] is router:
                memo[url] = route
                if len(memo) > ROUTE_MEMO:
                    memo.popitem(last=False)
        return route


def _tool(request: Dict[str, Any]) -> str:
    return str(request.get("for", "cli"))[:20]


def _url(request: Dict[str, Any]) -> str:
    url = request.get("url")
    if not isinstance(url, str) or not url:
        raise RequestError("'url' must be a non-empty string")
    return url


def ping(core: Core, request: Dict[str, Any], peer: Peer) -> Reply:
    """The daemon is alive: its version and pid."""
    return {"ok": True, "version": __version__, "pid": os.getpid()}


def get(core: Core, request: Dict[str, Any], peer: Peer, may_wait: bool = True) -> Optional[Reply]:
    """A token for ``url``, audited; with ``may_wait=False``, None unless one is fresh in memory."""
    url = request.get("url")
    if not isinstance(url, str) or not url:
        if not may_wait:
            return None
        raise RequestError("'url' must be a non-empty string")
    try:
        route = core.route(url)
        if may_wait:
            token = core.tokens.get(route.account, route.scopes)
        else:
            held = core.tokens.peek(route.account, route.scopes)
            if held is None:
                return None
            token = held
        if any(c in token.access_token for c in _UNSAFE):
            raise AuthFailed("the identity provider returned a token with control characters")
    except CredhelperError as exc:
        if not may_wait:
            return None  # the worker's call answers the error and audits it
        core.audit.write(event="get", pid=peer.pid, exe=peer.exe, tool=_tool(request),
                         url=redact_url(url, 300), outcome=exc.code)
        raise
    core.audit.write(event="get", pid=peer.pid, exe=peer.exe, tool=_tool(request),
                     url=redact_url(url, 300), account=route.account, outcome="ok")
    return {"ok": True, "username": route.username, "token": token.access_token,
            "expires_on": int(token.expires_on), "account": route.account}


def fast(core: Core, request: Dict[str, Any], peer: Peer) -> Optional[Reply]:
    """The accept loop's shortcut: ``ping``, or a ``get`` answered from memory; else None."""
    op = request["op"]
    if op == "get":
        return get(core, request, peer, may_wait=False)
    if op == "ping":
        return ping(core, request, peer)
    return None


def registry_get(core: Core, request: Dict[str, Any], peer: Peer) -> Reply:
    """A container registry's refresh token, traded for the route's Entra token the ACR way."""
    url = _url(request)
    try:
        route = core.route(url)
        if ACR_SCOPE not in route.scopes:
            raise NoRoute(f"{redact_url(url, 200)} is routed, but not as a container registry "
                          "(preset = \"acr\")")
        host = canonical(url).origin[len("https://"):]
        held = core.registries.get(
            (host, route.account, route.scopes),
            lambda: core.tokens.get(route.account, route.scopes).access_token,
            core.config.accounts[route.account].ca_bundle)
    except CredhelperError as exc:
        core.audit.write(event="registry_get", pid=peer.pid, exe=peer.exe, tool=_tool(request),
                         url=redact_url(url, 300), outcome=exc.code)
        raise
    core.audit.write(event="registry_get", pid=peer.pid, exe=peer.exe, tool=_tool(request),
                     url=redact_url(url, 300), account=route.account, outcome="ok")
    return {"ok": True, "username": NULL_USER, "token": held.refresh_token,
            "expires_on": int(held.expires_on), "account": route.account}


def invalidate(core: Core, request: Dict[str, Any], peer: Peer) -> Reply:
    """A tool says ``token`` was rejected: drop it so the next ``get`` acquires a new one."""
    url = _url(request)
    token = request.get("token")
    if not isinstance(token, str):
        raise RequestError("'token' must be a string")
    route = core.router.resolve(url)
    dropped = core.tokens.invalidate(route.account, route.scopes, token)
    core.audit.write(event="invalidate", pid=peer.pid, exe=peer.exe, url=redact_url(url, 300),
                     account=route.account, outcome="dropped" if dropped else "not_held")
    return {"ok": True, "dropped": dropped}


def status(core: Core, request: Dict[str, Any], peer: Peer) -> Reply:
    """Accounts, slots, routes and sinks; never a token."""
    config = core.config
    slots = core.tokens.status()
    return {
        "ok": True, "version": __version__, "pid": os.getpid(),
        "uptime": round(time.time() - core.started, 1),
        "config": str(core.config_path), "config_error": core.reload_error,
        "socket": str(core.socket_path), "state_dir": str(core.state_dir),
        "key_storage": core.keystore.describe(), "cache_problem": core.sessions.problem,
        "accounts": [_account_status(core, name, slots) for name in config.accounts],
        "slots": slots,
        "routes": [{"url": r.url, "account": r.account, "scopes": list(r.scopes)}
                   for r in config.routes],
        **core.sinks.status(),
        "registries": {host: NULL_USER for host in registry_hosts(config)},
        "registry_tokens": core.registries.status(),
        "azure": None if core.azure is None else core.azure.status(),
    }


def _account_status(core: Core, name: str, slots: List[Dict[str, Any]]) -> Dict[str, Any]:
    """What is known of one account, from memory and the cache: status never asks the IdP, so
    one that is down shows as this account's problem instead of hiding every other line."""
    account = core.config.accounts[name]
    info: Dict[str, Any] = {"name": name, "flow": account.flow, "problem": None,
                            "unreachable": False}
    source = core.tokens.source(name)
    if source is not None and hasattr(source, "signed_in"):
        try:
            info["signed_in"] = source.signed_in()
        except CredhelperError as exc:
            info["signed_in"], info["problem"] = None, exc.message
    failing = [s for s in slots if s["account"] == name and s.get("error")]
    if failing:
        info["unreachable"] = any(s["error"] == "idp_unavailable" for s in failing)
        info["problem"] = info["problem"] or failing[0]["reason"]
    return info


def reload(core: Core, request: Dict[str, Any], peer: Peer) -> Reply:
    """Load the config file again; a broken one is an error reply and the old config stays."""
    core.reload()
    return {"ok": True}


def stop(core: Core, request: Dict[str, Any], peer: Peer) -> Reply:
    """Stop the daemon once this reply has gone out; the pid lets the caller see it end."""
    # No delay needed for the reply: the listener ends only after its workers, this one
    # included, have finished.
    core.stop()
    return {"ok": True, "pid": os.getpid()}


def _interactive_source(core: Core, request: Dict[str, Any]) -> Tuple[str, Any]:
    """The device-code account a request names (or the only one) and its source."""
    config = core.config
    name = request.get("account")
    accounts = [a for a in config.accounts.values() if a.flow == "device_code"]
    if name is None:
        if len(accounts) != 1:
            raise RequestError(
                "name the account to sign in: " + (", ".join(a.name for a in accounts) or
                                                   "no device_code account is configured"))
        name = accounts[0].name
    if name not in config.accounts:
        people = ", ".join(a.name for a in accounts) or "none"
        raise RequestError(f"no account named {str(name)[:60]!r} in {core.config_path} "
                           f"(accounts that sign in with credhelper login: {people})")
    if config.accounts[name].flow != "device_code":
        raise RequestError(f"account {name!r} signs in by itself ({config.accounts[name].flow})")
    return name, core.tokens.source(name)


def login_start(core: Core, request: Dict[str, Any], peer: Peer) -> Reply:
    """Start a device-code sign-in; the reply carries the code to show the person."""
    name, source = _interactive_source(core, request)
    flow = source.login_start()
    core.audit.write(event="login_start", pid=peer.pid, exe=peer.exe, account=name)
    return {"ok": True, "account": name, **flow}


def login_wait(core: Core, request: Dict[str, Any], peer: Peer) -> Reply:
    """Wait up to ``wait`` seconds for the sign-in to finish (or cancel it)."""
    name, source = _interactive_source(core, request)
    wait = request.get("wait", 10)
    if not isinstance(wait, (int, float)) or not 0 <= wait <= 60:
        raise RequestError("'wait' must be a number of seconds between 0 and 60")
    if request.get("cancel"):
        source.login_cancel()
    result = source.login_wait(float(wait))
    if result.get("state") == "done":
        core.sessions.persist()
        core.tokens.drop_account(name)  # slots re-acquire with the new sign-in
        core.registries.drop_account(name)
        core.sinks.warm()  # dropping took the pinned sink slots too: the files need them
        core.audit.write(event="login", pid=peer.pid, exe=peer.exe, account=name, outcome="ok")
    return {"ok": True, "account": name, **result}


def logout(core: Core, request: Dict[str, Any], peer: Peer) -> Reply:
    """Forget an account's sign-in: memory, cache and every sink's file."""
    name, source = _interactive_source(core, request)
    signed_out = bool(source.logout())
    core.tokens.drop_account(name)
    core.registries.drop_account(name)
    core.sessions.persist()
    core.sinks.forget_account(name)
    core.audit.write(event="logout", pid=peer.pid, exe=peer.exe, account=name,
                     outcome="ok" if signed_out else "not_signed_in")
    return {"ok": True, "account": name, "signed_out": signed_out}


OPS: Dict[str, Op] = {
    "ping": ping, "get": get, "invalidate": invalidate, "status": status, "reload": reload,
    "stop": stop, "login_start": login_start, "login_wait": login_wait, "logout": logout,
    "registry_get": registry_get,
}


def handle(core: Core, request: Dict[str, Any], peer: Peer) -> Reply:
    """Answer one request on a worker thread (the op name was checked by the protocol)."""
    reply = OPS[request["op"]](core, request, peer)
    assert reply is not None  # only get(may_wait=False) answers None
    return reply
