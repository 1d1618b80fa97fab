"""The daemon: wires config, routing, token slots, the vault and the npm sink behind the socket.

Hot path (``get`` with a fresh token): route lookup and a dictionary read; no network, no MSAL,
no disk except one audit line.
"""

import faulthandler
import logging
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from . import __version__, config as config_mod, paths, systemd
from .auth import make_source
from .auth.base import Token
from .clock import SystemClock
from .errors import AuthFailed, ConfigError, CredhelperError, RequestError
from .hardening import harden_process
from .logs import AuditLog, setup_logging
from .keystore import choose_keystore
from .refresher import Refresher
from .routing import Router, redact
from .server import Peer, SocketServer, bind_unix
from .sessions import Sessions
from .sinks.npmrc import NpmrcSink
from .tokens import TokenManager
from .vault import Vault

log = logging.getLogger("credhelper.daemon")

_UNSAFE = ("\r", "\n", "\0")
_ROUTE_CACHE = 512


class Daemon:
    """One running credhelper daemon."""

    def __init__(self, config_path: Optional[Path] = None, state_dir: Optional[Path] = None,
                 socket_path: Optional[Path] = None, clock: Any = None,
                 rng: Optional[random.Random] = None, foreground: bool = True) -> None:
        self.config_path = config_path or paths.config_path()
        self.state_dir = state_dir or paths.state_dir()
        self.socket_path = socket_path or paths.socket_path()
        self.clock = clock or SystemClock()
        self.started = time.time()
        self._lock = threading.RLock()
        self._reload_error: Optional[str] = None
        paths.ensure_private_dir(self.state_dir)
        setup_logging(self.state_dir, foreground)
        harden_process()  # before the vault puts a refresh token in memory
        self.config = config_mod.load(self.config_path)
        self.router = Router(self.config.routes)
        # The fast path's memo of URL -> route (a git fetch asks for the same URL over and
        # over); tied to the router it came from, so a reload empties it.
        self._routes: Tuple[Router, Dict[str, Any]] = (self.router, {})
        self.audit = AuditLog(self.state_dir / "audit.log")
        self.keystore = choose_keystore(self.state_dir)
        self.sessions = Sessions(Vault(self.state_dir / "cache.bin", self.keystore))
        self.npm = NpmrcSink(paths.npmrc_path(), self.config.npm_registries)
        self.tokens = TokenManager(self._build_sources(self.config), self.clock,
                                   rng=rng or random.Random(), on_token=self._on_token)
        self.refresher = Refresher(self.tokens, self.clock)
        self._server: Optional[SocketServer] = None
        self._watcher: Any = None
        self._ops: Dict[str, Callable[[Dict[str, Any], Peer], Dict[str, Any]]] = {
            "ping": self._op_ping, "get": self._op_get, "invalidate": self._op_invalidate,
            "status": self._op_status, "reload": self._op_reload, "stop": self._op_stop,
            "login_start": self._op_login_start, "login_wait": self._op_login_wait,
            "logout": self._op_logout,
        }

    # -- wiring -------------------------------------------------------------------------------

    def _build_sources(self, cfg: config_mod.Config) -> Dict[str, Any]:
        """One source per account; an unchanged account keeps its source (and any sign-in in flight)."""
        current = getattr(self, "tokens", None)
        sources = {}
        for name, account in cfg.accounts.items():
            old = current.source(name) if current is not None else None
            sources[name] = old if old is not None and old.account == account else make_source(
                account, self.sessions.cache)
        return sources

    def _npm_slots(self) -> Dict[str, Tuple[str, Tuple[str, ...]]]:
        slots = {}
        for registry in self.config.npm_registries:
            route = self.router.resolve(registry)
            slots[registry] = (route.account, route.scopes)
        return slots

    def _on_token(self, account: str, scopes: Tuple[str, ...], token: Token) -> None:
        self.sessions.persist()
        registries = [r for r, slot in self._npm_slots().items() if slot == (account, scopes)]
        if registries:
            try:
                self.npm.write({registry: token.access_token for registry in registries})
            except (OSError, ValueError, CredhelperError) as exc:
                log.warning("cannot update the npm config: %s", exc)

    def _warm_npm(self) -> None:
        for account, scopes in set(self._npm_slots().values()):
            self.tokens.pin(account, scopes)
        self.refresher.wake()
        # A registry added by a reload may share a slot that already holds a fresh token: no
        # acquisition (so no on_token) would come for it until the next refresh.
        threading.Thread(target=self._fill_npm, daemon=True, name="npm-fill").start()

    def _fill_npm(self) -> None:
        for account, scopes in set(self._npm_slots().values()):
            try:
                self._on_token(account, scopes, self.tokens.get(account, scopes))
            except CredhelperError:
                pass  # the pinned slot retries in the background and calls on_token itself

    # -- lifecycle ----------------------------------------------------------------------------

    def serve(self) -> None:
        """Bind (or take the systemd socket), serve until stopped, clean up."""
        inherited = systemd.listen_fds()
        if inherited:
            sock, owned_path = inherited[0], None
        else:
            sock, owned_path = bind_unix(self.socket_path), self.socket_path
        # A signal can land on any thread; then nothing interrupts the accept loop's select()
        # and Python never runs the handler. The wakeup fd makes the kernel's delivery wake it.
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        self._server = SocketServer(sock, self._handle, self.audit, path=owned_path,
                                    wake_fd=wake_r, fast=self._fast)
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: stacks to stderr
        try:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(signum, self._on_signal)
            signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        except ValueError:  # not the main thread (tests): the caller stops us
            pass
        self.refresher.start()
        if self.config.npm_registries:
            self.npm.watch()
            self._warm_npm()
        self._watch_config()
        log.info("credhelper %s ready on %s (pid %d)", __version__,
                 owned_path or "a socket from systemd", os.getpid())
        systemd.ready()
        try:
            self._server.serve_forever()
        finally:
            try:
                signal.set_wakeup_fd(-1)
            except ValueError:
                pass
            os.close(wake_r)
            os.close(wake_w)
            self._cleanup()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGHUP:
            threading.Thread(target=self._reload_logged, daemon=True).start()
            return
        log.info("signal %d: stopping", signum)
        threading.Thread(target=self.stop, daemon=True).start()

    def stop(self) -> None:
        """Ask the server loop to end; ``serve`` returns after cleaning up."""
        systemd.stopping()
        if self._server is not None:
            self._server.shutdown()

    def _cleanup(self) -> None:
        self.refresher.stop()
        if self._watcher is not None:
            self._watcher.stop()
        self.npm.stop()
        self.sessions.persist()
        self.audit.close()
        log.info("stopped")

    def _watch_config(self) -> None:
        from .watch import FileWatcher  # watchdog is loaded only by the daemon

        self._watcher = FileWatcher(self.config_path, self.reload)
        self._watcher.start()

    def _reload_logged(self) -> None:
        try:
            self.reload()
        except ConfigError:
            pass  # reload() logged why and kept the running config

    def reload(self) -> None:
        """Load the config file again; a broken file keeps the running config and says why."""
        try:
            new = config_mod.load(self.config_path)
            router = Router(new.routes)
        except ConfigError as exc:  # every reason a file is refused, deep nesting included
            self._reload_error = exc.message  # status shows it until a reload succeeds
            log.error("config reload refused, keeping the running config: %s", exc.message)
            raise
        with self._lock:
            self.tokens.replace_sources(self._build_sources(new))
            self.config, self.router = new, router
            self._reload_error = None
            self.npm.set_registries(new.npm_registries)
        if new.npm_registries:
            self.npm.watch()
            self._warm_npm()
        log.info("config reloaded from %s", self.config_path)

    # -- requests -----------------------------------------------------------------------------

    def _handle(self, request: Dict[str, Any], peer: Peer) -> Dict[str, Any]:
        return self._ops[request["op"]](request, peer)

    @staticmethod
    def _url(request: Dict[str, Any]) -> str:
        url = request.get("url")
        if not isinstance(url, str) or not url:
            raise RequestError("'url' must be a non-empty string")
        return url

    def _op_ping(self, request: Dict[str, Any], peer: Peer) -> Dict[str, Any]:
        return {"ok": True, "version": __version__, "pid": os.getpid()}

    def _fast(self, request: Dict[str, Any], peer: Peer) -> Optional[Dict[str, Any]]:
        """The accept loop's shortcut: ``ping``, or a ``get`` whose slot holds a fresh token.

        None sends the request down the ordinary path (which answers errors and audits them).
        """
        op = request["op"]
        if op == "ping":
            return self._op_ping(request, peer)
        url = request.get("url")
        if op != "get" or not isinstance(url, str) or not url:
            return None
        router = self.router
        routes = self._routes
        if routes[0] is not router:  # a reload swapped the router: forget the old answers
            routes = self._routes = (router, {})
        route = routes[1].get(url)
        if route is None:
            try:
                route = router.resolve(url)
            except CredhelperError:
                return None
            if len(routes[1]) >= _ROUTE_CACHE:
                routes[1].clear()
            routes[1][url] = route
        token = self.tokens.peek(route.account, route.scopes)
        if token is None or any(c in token.access_token for c in _UNSAFE):
            return None
        return self._granted(request, peer, url, route, token)

    def _op_get(self, request: Dict[str, Any], peer: Peer) -> Dict[str, Any]:
        url = self._url(request)
        try:
            route = self.router.resolve(url)
            token = self.tokens.get(route.account, route.scopes)
            if any(c in token.access_token for c in _UNSAFE):
                raise AuthFailed("the identity provider returned a token with control characters")
        except CredhelperError as exc:
            self.audit.write(event="get", pid=peer.pid, exe=peer.exe, tool=_tool(request),
                             url=redact(url, 300), outcome=exc.code)
            raise
        return self._granted(request, peer, url, route, token)

    def _granted(self, request: Dict[str, Any], peer: Peer, url: str, route: Any,
                 token: Token) -> Dict[str, Any]:
        self.audit.write(event="get", pid=peer.pid, exe=peer.exe, tool=_tool(request),
                         url=redact(url, 300), account=route.account, outcome="ok")
        return {"ok": True, "username": route.username, "token": token.access_token,
                "expires_on": int(token.expires_on), "account": route.account}

    def _op_invalidate(self, request: Dict[str, Any], peer: Peer) -> Dict[str, Any]:
        url = self._url(request)
        token = request.get("token")
        if not isinstance(token, str):
            raise RequestError("'token' must be a string")
        route = self.router.resolve(url)
        dropped = self.tokens.invalidate(route.account, route.scopes, token)
        self.audit.write(event="invalidate", pid=peer.pid, exe=peer.exe, url=redact(url, 300),
                         account=route.account, outcome="dropped" if dropped else "not_held")
        return {"ok": True, "dropped": dropped}

    def _op_status(self, request: Dict[str, Any], peer: Peer) -> Dict[str, Any]:
        return {
            "ok": True, "version": __version__, "pid": os.getpid(),
            "uptime": round(time.time() - self.started, 1),
            "config": str(self.config_path), "config_error": self._reload_error,
            "socket": str(self.socket_path), "state_dir": str(self.state_dir),
            "key_storage": self.keystore.describe(), "cache_problem": self.sessions.problem,
            "accounts": [self._account_status(name) for name in self.config.accounts],
            "slots": self.tokens.status(),
            "routes": [{"url": r.url, "account": r.account, "scopes": list(r.scopes)}
                       for r in self.config.routes],
            "npm": {"file": str(self.npm.path), "registries": list(self.config.npm_registries)},
        }

    def _account_status(self, name: str) -> Dict[str, Any]:
        account = self.config.accounts[name]
        info: Dict[str, Any] = {"name": name, "flow": account.flow}
        source = self.tokens.source(name)
        if hasattr(source, "signed_in"):
            info["signed_in"] = source.signed_in()
        return info

    def _op_reload(self, request: Dict[str, Any], peer: Peer) -> Dict[str, Any]:
        self.reload()
        return {"ok": True}

    def _op_stop(self, request: Dict[str, Any], peer: Peer) -> Dict[str, Any]:
        threading.Timer(0.05, self.stop).start()
        return {"ok": True}

    def _interactive_source(self, request: Dict[str, Any]) -> Any:
        name = request.get("account")
        accounts = [a for a in self.config.accounts.values() if a.flow == "device_code"]
        if name is None:
            if len(accounts) != 1:
                raise RequestError(
                    "name the account to sign in: " + (", ".join(a.name for a in accounts) or
                                                       "no device_code account is configured"))
            name = accounts[0].name
        if name not in self.config.accounts:
            raise RequestError(f"no account named {str(name)[:60]!r} in {self.config_path}")
        if self.config.accounts[name].flow != "device_code":
            raise RequestError(f"account {name!r} signs in by itself ({self.config.accounts[name].flow})")
        return name, self.tokens.source(name)

    def _op_login_start(self, request: Dict[str, Any], peer: Peer) -> Dict[str, Any]:
        name, source = self._interactive_source(request)
        flow = source.login_start()
        self.audit.write(event="login_start", pid=peer.pid, exe=peer.exe, account=name)
        return {"ok": True, "account": name, **flow}

    def _op_login_wait(self, request: Dict[str, Any], peer: Peer) -> Dict[str, Any]:
        name, source = self._interactive_source(request)
        wait = request.get("wait", 10)
        if not isinstance(wait, (int, float)) or not 0 <= wait <= 60:
            raise RequestError("'wait' must be a number of seconds between 0 and 60")
        if request.get("cancel"):
            source.login_cancel()
        result = source.login_wait(float(wait))
        if result.get("state") == "done":
            self.sessions.persist()
            self.tokens.drop_account(name)  # slots re-acquire with the new sign-in
            if self.config.npm_registries:
                self._warm_npm()  # dropping took the pinned npm slots too: the block needs them
            self.audit.write(event="login", pid=peer.pid, exe=peer.exe, account=name, outcome="ok")
        return {"ok": True, "account": name, **result}

    def _op_logout(self, request: Dict[str, Any], peer: Peer) -> Dict[str, Any]:
        name, source = self._interactive_source(request)
        source.logout()
        self.tokens.drop_account(name)
        self.sessions.persist()
        self.npm.forget([r for r, (account, _) in self._npm_slots().items() if account == name])
        self.audit.write(event="logout", pid=peer.pid, exe=peer.exe, account=name, outcome="ok")
        return {"ok": True, "account": name}


def _tool(request: Dict[str, Any]) -> str:
    return str(request.get("for", "cli"))[:20]
