"""The daemon: wires config, routing, token slots, the vault and the sinks behind the socket.

What each socket op does lives in ``ops``; what each tool file holds lives in ``sinks``. This
module builds them, runs the listeners, and handles signals, reloads and shutdown.
"""

import faulthandler
import functools
import logging
import os
import random
import signal
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from . import __version__, config as config_mod, gitcache, ops, paths, systemd
from .acr import RegistryTokens
from .auth import make_source
from .auth.base import Token
from .clock import SystemClock
from .errors import ConfigError
from .gitcache import CacheServer
from .hardening import harden_process
from .kept import KeptTokens
from .keystore import choose_keystore
from .listener import SocketServer, bind_unix, claim_socket_path
from .logs import AuditLog, setup_logging
from .msal_cache import Sessions
from .refresher import Refresher
from .routing import Router
from .sinks.keeper import SinkKeeper, open_sinks
from .tokens import TokenManager
from .toolrecord import ToolRecord
from .vault import Vault

log = logging.getLogger("credhelper.daemon")
Listener = Union[SocketServer, CacheServer]  # each has serve_forever() and shutdown()


class Daemon:
    """One running credhelper daemon."""

    def __init__(self, config_path: Optional[Path] = None, state_dir: Optional[Path] = None,
                 socket_path: Optional[Path] = None, clock: Any = None,
                 rng: Optional[random.Random] = None, foreground: bool = True) -> None:
        self.config_path = config_path or paths.config_path()
        self.state_dir = state_dir or paths.state_dir()
        self.socket_path = socket_path or paths.socket_path()
        self._lock = threading.RLock()
        paths.refuse_checkout(self.state_dir, "state directory")
        paths.refuse_checkout(self.socket_path, "socket")
        paths.ensure_private_dir(self.state_dir)
        setup_logging(self.state_dir, foreground)
        harden_process()  # before the vault puts a refresh token in memory
        config = config_mod.load(self.config_path)
        clock = clock or SystemClock()
        keystore = choose_keystore(self.state_dir)
        self.sessions = Sessions(Vault(self.state_dir / "cache.bin", keystore))
        tokens = TokenManager(self._build_sources(config, None), clock, rng=rng or random.Random(),
                              on_token=self._on_token, on_change=self._keep)
        # tokens the last daemon held, each with its planned refresh: a restart asks nobody
        self.kept = KeptTokens(Vault(self.state_dir / "tokens.bin", keystore))
        adopted = tokens.restore(self.kept.load(config.accounts))
        if adopted:
            log.info("kept %d token(s) from the last run", adopted)
        self.refresher = Refresher(tokens, clock)
        # `configure TOOL --remove` takes a tool's file off the daemon's hands, across restarts
        self.tools = ToolRecord(self.state_dir)
        self.sinks = SinkKeeper(open_sinks(config, self.tools), tokens, self.refresher.wake,
                                resolve=lambda url: self.core.router.resolve(url))
        self.core = ops.Core(
            config=config, router=Router(config.routes), tokens=tokens, sessions=self.sessions,
            sinks=self.sinks, audit=AuditLog(self.state_dir / "audit.log"), keystore=keystore,
            config_path=self.config_path, socket_path=self.socket_path, state_dir=self.state_dir,
            reload=self.reload, stop=self.stop, registries=RegistryTokens(clock))
        self._servers: List[Listener] = []
        self._claim: Optional[int] = None  # the flock that makes this the socket's one daemon
        self._where = ""
        self._watcher: Any = None
        self._tools_watcher: Any = None

    # -- wiring -------------------------------------------------------------------------------

    def _build_sources(self, cfg: config_mod.Config, current: Optional[TokenManager]) -> Dict[str, Any]:
        """One source per account; an unchanged account keeps its source (and any sign-in in flight)."""
        sources = {}
        for name, account in cfg.accounts.items():
            old = current.source(name) if current is not None else None
            sources[name] = old if old is not None and old.account == account else make_source(
                account, self.sessions.cache)
        return sources

    def _on_token(self, account: str, scopes: Tuple[str, ...], token: Token) -> None:
        self.sessions.persist()
        self._keep()
        self.sinks.on_token(account, scopes, token)

    def _keep(self) -> None:
        """Write every held token to the vault (a new one, or one dropped by logout/invalidate)."""
        core = self.core
        self.kept.save(core.tokens.kept, core.config.accounts)

    def _listeners(self, wake_fd: int) -> List[Listener]:
        """Every socket the daemon serves; the first runs on the main thread and sees signals.

        Another listener (another protocol, another socket) is one more entry here, calling the
        same ``ops`` on the same ``core``.
        """
        inherited = systemd.listen_fds()
        if inherited:
            sock, owned_path = inherited[0], None
        else:
            self._claim = claim_socket_path(self.socket_path)
            sock, owned_path = bind_unix(self.socket_path), self.socket_path
        self._where = str(owned_path or "a socket from systemd")
        listeners: List[Listener] = [
            SocketServer(sock, functools.partial(ops.handle, self.core), self.core.audit,
                         path=owned_path, wake_fd=wake_fd, fast=functools.partial(ops.fast, self.core))]
        git = gitcache.for_core(self.core, self.socket_path)
        if git is not None:
            listeners.append(git)
        return listeners

    # -- lifecycle ----------------------------------------------------------------------------

    def serve(self) -> None:
        """Bind (or take the systemd socket), serve until stopped, clean up."""
        # A signal can land on any thread; then nothing interrupts the accept loop's select()
        # and Python never runs the handler. The wakeup fd makes the kernel's delivery wake it.
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        try:
            self._servers = self._listeners(wake_r)
        except BaseException:
            self._release_claim()
            os.close(wake_r)
            os.close(wake_w)
            raise
        main, others = self._servers[0], self._servers[1:]
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: stacks to stderr
        try:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(signum, self._on_signal)
            signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        except ValueError:  # not the main thread (tests): the caller stops us
            pass
        self.refresher.start()
        self.sinks.start()
        self._match_azure()
        self._watch_config()
        threads = [threading.Thread(target=s.serve_forever, daemon=True, name="listener")
                   for s in others]
        for thread in threads:
            thread.start()
        log.info("credhelper %s ready on %s (pid %d)", __version__, self._where, os.getpid())
        systemd.ready()
        try:
            main.serve_forever()
        finally:
            try:
                signal.set_wakeup_fd(-1)
            except ValueError:
                pass
            for server in others:
                server.shutdown()
            for thread in threads:
                thread.join(timeout=10)
            os.close(wake_r)
            os.close(wake_w)
            try:
                self._cleanup()
            finally:
                self._release_claim()  # last: a new daemon starts once this one has saved all

    def _release_claim(self) -> None:
        if self._claim is not None:
            os.close(self._claim)
            self._claim = None

    def _match_azure(self) -> None:
        if self.core.config.azure is None and self.core.azure is None:
            return
        from .azure_identity import match_config  # only daemons with [azure] load it

        match_config(self.core, self.socket_path.parent)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGHUP:
            threading.Thread(target=self._reload_logged, daemon=True).start()
            return
        log.info("signal %d: stopping", signum)
        threading.Thread(target=self.stop, daemon=True).start()

    def stop(self) -> None:
        """Ask the server loops to end; ``serve`` returns after cleaning up."""
        systemd.stopping()
        for server in self._servers:
            server.shutdown()

    def _cleanup(self) -> None:
        self.refresher.stop()
        if self.core.azure is not None:
            self.core.azure.stop()
        for watcher in (self._watcher, self._tools_watcher):
            if watcher is not None:
                watcher.stop()
        self.sinks.stop()
        self.sessions.persist()
        # A token is answered before its thread keeps it: one handed out just before a stop
        # would otherwise be missing after the restart, and the IdP asked again.
        self._keep()
        self.core.audit.close()
        log.info("stopped")

    def _watch_config(self) -> None:
        from .watch import FileWatcher  # watchdog is loaded only by the daemon

        self._watcher = FileWatcher(self.config_path, self.reload)
        self._watcher.start()
        self._tools_watcher = FileWatcher(self.tools.path, self.sinks.tools_changed)
        self._tools_watcher.start()

    def _reload_logged(self) -> None:
        try:
            self.reload()
        except ConfigError:
            pass  # reload() logged why and kept the running config

    def reload(self) -> None:
        """Load the config file again; a broken file keeps the running config and says why."""
        core = self.core
        try:
            new = config_mod.load(self.config_path)
            router = Router(new.routes)
        except ConfigError as exc:  # every reason a file is refused, deep nesting included
            core.reload_error = exc.message  # status shows it until a reload succeeds
            log.error("config reload refused, keeping the running config: %s", exc.message)
            raise
        with self._lock:
            for name, account in core.config.accounts.items():
                if new.accounts.get(name) != account:
                    core.registries.drop_account(name)  # traded for a sign-in that changed
            core.tokens.replace_sources(self._build_sources(new, core.tokens))
            core.config, core.router = new, router
            core.reload_error = None
            self.sinks.reconfigure(new)
        self.sinks.start()
        if self._servers:
            self._match_azure()
        log.info("config reloaded from %s", self.config_path)
