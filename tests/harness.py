"""A throwaway workspace for end-to-end tests: its own HOME, config, socket and a real daemon.

Tests drive real processes (the daemon, git, pip, npm) against the in-process emulator; nothing
touches the developer's own configuration.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional

from credhelper.client import Client

BIN = Path(sys.executable).parent
ADO = "499b84ac-1321-427f-aa17-267ca6975798/.default"
FEDERATION_AUDIENCE = "api://AzureADTokenExchange"


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes (a guard against hangs, not a timing test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def toml_value(value: Any) -> str:
    """A Python value as TOML (strings, lists of strings, numbers, booleans)."""
    return json.dumps(value)


def config_text(accounts: Dict[str, Dict[str, Any]], routes: Iterable[Dict[str, Any]],
                npm: Iterable[str] = ()) -> str:
    """A config.toml from plain dicts, as the tests and benchmarks write them."""
    lines: List[str] = []
    for name, fields in accounts.items():
        lines.append(f"[accounts.{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in fields.items()]
        lines.append("")
    for route in routes:
        lines.append("[[routes]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in route.items()]
        lines.append("")
    npm = list(npm)
    if npm:
        lines += ["[npm]", f"registries = {toml_value(npm)}", ""]
    return "\n".join(lines)


def scale_routes(feed_base: str, accounts: int, routes: int) -> List[Dict[str, Any]]:
    """``routes`` routes under ``feed_base`` spread over accounts svc0..: the scale benchmark's."""
    return [{"url": f"{feed_base}/org{n}/", "account": f"svc{n % accounts}",
             "scopes": ["api://credhelper-feed/.default"]} for n in range(routes)]


def send_raw(path: str, data: bytes, timeout: float = 30.0, half_close: bool = True) -> bytes:
    """Send raw bytes to a Unix socket (half-closing after them unless told not to) and read
    until the other side closes; b"" when it just closed."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered (and closed) before taking everything: still read the answer
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        sock.close()

class Workspace:
    """One user's set-up: HOME, config, state, socket, and the daemon process."""

    def __init__(self, root: Path, emulator: Any) -> None:
        self.root = root
        self.em = emulator
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_path = self.home / ".config" / "credhelper" / "config.toml"
        self.state_dir = self.home / ".local" / "state" / "credhelper"
        self.socket = root / "run" / "daemon.sock"
        self.npmrc = self.home / ".npmrc"
        self.daemon: Optional[subprocess.Popen] = None
        self.gp = root / "bin" / "gp"
        self.gp.parent.mkdir(parents=True, exist_ok=True)
        self.gp.write_text(f"#!/bin/sh\nexec {sys.executable} -m credhelper.emulator gp "
                           f"--dir {emulator.workdir} \"$@\"\n")
        self.gp.chmod(0o755)
        self.env = self._environment()

    def _environment(self) -> Dict[str, str]:
        # requests (inside pip) lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override PIP_CERT, so the
        # tools run without them; the daemon gets them back (see start_daemon) to prove that
        # an account's ca_bundle still takes effect.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CREDHELPER_", "XDG_", "GIT_", "PIP_", "npm_", "NPM_"))
               and k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
        ca = str(self.em.ca_file)
        env.update({
            "HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_STATE_HOME": str(self.home / ".local" / "state"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "CREDHELPER_SOCKET": str(self.socket), "CREDHELPER_HTTP_TIMEOUT": "3",
            "CREDHELPER_NO_AUTOSTART": "1",
            "PATH": f"{BIN}{os.pathsep}{self.gp.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "GIT_CONFIG_GLOBAL": str(self.home / ".gitconfig"), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0", "GIT_SSL_CAINFO": ca, "GIT_ASKPASS": "/bin/false",
            "PIP_CERT": ca, "PIP_CONFIG_FILE": str(self.home / ".config" / "pip" / "pip.conf"),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1",
            # npm's cafile (this machine's global npmrc sets one) replaces Node's CA list
            "NODE_EXTRA_CA_CERTS": ca, "npm_config_cafile": ca,
            "NPM_CONFIG_USERCONFIG": str(self.npmrc),
            "npm_config_update_notifier": "false", "npm_config_audit": "false",
            "npm_config_fund": "false", "npm_config_cache": str(self.root / "npm-cache"),
        })
        return env

    # -- config ---------------------------------------------------------------------------------

    def federated_account(self, name: str = "workspace", **extra: Any) -> Dict[str, Any]:
        """An account using the emulator's federated app and the fake `gp`."""
        account = {
            "authority": f"{self.em.idp_base}/{self.em.tenant}", "client_id": "fed-app",
            "flow": "federated",
            "assertion_command": [str(self.gp), "idp", "token", "--audience", FEDERATION_AUDIENCE],
            "ca_bundle": str(self.em.ca_file),
        }
        account.update(extra)
        return {name: account}

    def write_config(self, accounts: Dict[str, Dict[str, Any]], routes: Iterable[Dict[str, Any]],
                     npm: Iterable[str] = ()) -> Path:
        """Write config.toml from plain dicts."""
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(config_text(accounts, routes, npm))
        return self.config_path

    def default_config(self, npm: bool = False) -> Path:
        """One federated account, one route for the whole feed host."""
        return self.write_config(
            self.federated_account(),
            [{"url": f"{self.em.feed_base}/", "account": "workspace", "preset": "azure-devops"}],
            npm=[self.em.npm_url] if npm else (),
        )

    # -- processes -------------------------------------------------------------------------------

    def run(self, cmd: List[str], check: bool = True, timeout: float = 120, **kw: Any
            ) -> subprocess.CompletedProcess:
        """Run a command in this workspace's environment, capturing output."""
        kw.setdefault("env", self.env)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
        if check and proc.returncode != 0:
            raise AssertionError(f"{cmd[:3]} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def credhelper(self, *args: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess:
        """Run the real `credhelper` CLI."""
        return self.run([str(BIN / "credhelper"), *args], check=check, **kw)

    def git(self, *args: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess:
        """Run real git."""
        return self.run(["git", *args], check=check, **kw)

    def start_daemon(self, timeout: float = 60,
                     command: Optional[List[str]] = None) -> subprocess.Popen:
        """Start `credhelper daemon` (or ``command``) in the foreground; wait until it answers."""
        log = open(self.root / "daemon.stderr", "ab")
        self.daemon = subprocess.Popen(command or [str(BIN / "credhelper"), "daemon"], env=self.daemon_env(),
                                       stdout=log, stderr=log)
        client = self.client()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                raise AssertionError(f"daemon exited {self.daemon.returncode}: {self.daemon_output()}")
            if client.ping():
                return self.daemon
            time.sleep(0.05)
        raise AssertionError(f"daemon not ready in {timeout}s: {self.daemon_output()}")

    def daemon_env(self) -> Dict[str, str]:
        """The daemon's environment: as corporate images set it, CA variables without our CA."""
        import certifi

        env = dict(self.env)
        env["REQUESTS_CA_BUNDLE"] = env["CURL_CA_BUNDLE"] = certifi.where()
        return env

    def stop_daemon(self) -> Optional[int]:
        """SIGTERM the daemon and wait for it."""
        if self.daemon is None or self.daemon.poll() is not None:
            return None if self.daemon is None else self.daemon.returncode
        self.daemon.send_signal(signal.SIGTERM)
        try:
            return self.daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.daemon.send_signal(signal.SIGUSR1)  # the daemon dumps its threads' stacks
            time.sleep(1)
            self.daemon.kill()
            raise AssertionError(f"daemon did not stop on SIGTERM: {self.daemon_output()}")

    def daemon_output(self) -> str:
        """What the daemon printed (for assertion messages; it never holds a token)."""
        path = self.root / "daemon.stderr"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def client(self) -> Client:
        """A socket client for this workspace's daemon."""
        return Client(self.socket)

    def logs(self) -> str:
        """Everything the daemon wrote: daemon log, audit log, stderr."""
        texts = [self.daemon_output()]
        for name in ("daemon.log", "audit.log"):
            path = self.state_dir / name
            if path.exists():
                texts.append(path.read_text(errors="replace"))
        return "\n".join(texts)
