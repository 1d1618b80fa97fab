"""Keeps ``machine HOST login USER password TOKEN`` lines fresh in a managed block of ~/.netrc.

pip (through requests), uv, poetry, twine and ``uv publish`` all read the user's netrc, in every
virtualenv, whatever their keyring settings, with or without ``--no-input``; none of them can run
a credential helper the way git does. So for the Python tools the daemon keeps their token in
this one file, as it keeps npm's in npmrc: rewritten after every refresh, 0600, and everything
outside the block left byte for byte as it was.

netrc names a host only: no scheme, port or path. A host gets a line only when every route on
it (any port) leads to one account, scopes and user name, which is what a path-less request
gets from the router too (DESIGN §6.3); other hosts are left out and ``doctor`` says why.
"""

import os
import re
import stat
import threading
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from .. import paths
from ..atomic import write_atomic
from ..config import Config, Route
from ..errors import ConfigError, NoRoute, RequestError
from ..routing import route_target
from .base import HeldTokens
from .npmrc import BEGIN, END, render, without_block

Slot = Tuple[str, Tuple[str, ...]]
PYTHON_TOOLS = ("pip", "uv", "poetry")   # the tools that read the block
# netrc splits on whitespace and treats '#' and quotes specially; a host, user or token with
# any of them would not reach the tool as written (and could smuggle another entry in).
_UNSAFE = re.compile(r"[\s\"'#\\]|[\x00-\x1f\x7f]")


class NetrcHost(NamedTuple):
    """One host the block serves: the identity its routes share, the user name, one route URL."""

    host: str
    slot: Slot
    username: str
    url: str


def plan(routes: Sequence[Route]) -> Tuple[Dict[str, NetrcHost], Dict[str, str]]:
    """The hosts netrc can serve safely, and the others with the reason each is left out."""
    by_host: Dict[str, List[Route]] = {}
    for route in routes:
        try:
            host = route_target(route.url).host  # the config loader's, remembered
        except (NoRoute, RequestError):
            continue  # the config loader has refused it already
        by_host.setdefault(host, []).append(route)
    served: Dict[str, NetrcHost] = {}
    skipped: Dict[str, str] = {}
    for host, host_routes in sorted(by_host.items()):
        identities = {(r.account, r.scopes, r.username) for r in host_routes}
        if len(identities) > 1:
            skipped[host] = ("its routes lead to different accounts, scopes or user names, and "
                             "netrc can hold one per host")
        elif ":" in host or _UNSAFE.search(host) or _UNSAFE.search(host_routes[0].username):
            # an IPv6 literal too: requests looks netrc up by the netloc cut at its first ':'
            skipped[host] = "its name or user name cannot be written in netrc"
        else:
            route = host_routes[0]
            served[host] = NetrcHost(host, (route.account, route.scopes), route.username, route.url)
    return served, skipped


class NetrcSink(HeldTokens):
    """The managed block of one netrc file, for every routed host netrc can serve."""

    name = "netrc"
    tools = PYTHON_TOOLS   # kept while any of these is configured (the tool record's gate)
    default_on = False     # a file of the user's own: only after `credhelper configure pip|uv|poetry`

    @classmethod
    def from_config(cls, config: Config, gate: Optional[Callable[[], bool]] = None) -> "NetrcSink":
        """The sink for the netrc of the daemon's own environment (``$NETRC``, else ``~/.netrc``)."""
        sink = cls(paths.netrc_path(), gate)
        sink.reconfigure(config)
        return sink

    def __init__(self, path: Path, gate: Optional[Callable[[], bool]] = None) -> None:
        self.path = Path(path)
        self._gate = gate        # asked before every write: False once the tools were removed
        self._hosts: Dict[str, NetrcHost] = {}
        self._urls: Dict[str, str] = {}          # registry URL (a route's) -> host
        self._tokens: Dict[str, str] = {}        # host -> current token
        self._created = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"NetrcSink({str(self.path)!r}, hosts={sorted(self._hosts)})"

    @property
    def registries(self) -> Tuple[str, ...]:
        """One route URL per served host: the keeper resolves it to the host's token slot."""
        return tuple(self._urls)

    def enabled(self) -> bool:
        """Whether pip, uv or poetry is configured (so the file is ours to keep)."""
        return self._gate is None or self._gate()

    def reconfigure(self, config: Config) -> None:
        """Serve the hosts of a (re)loaded config; lines of hosts no longer served leave the file."""
        hosts = plan(config.routes)[0]
        with self._lock:
            self._hosts = hosts
            self._urls = {entry.url: host for host, entry in hosts.items()}
            self._tokens = {h: t for h, t in self._tokens.items() if h in hosts}
            if self._tokens:
                self._sync()
        if not self._tokens:
            self.remove()

    def write(self, tokens: Mapping[str, str]) -> None:
        """Set the token of each given registry's host and rewrite the block."""
        for token in tokens.values():
            if not token or _UNSAFE.search(token):
                raise ValueError("refusing to write a token with unsafe characters in it")
        with self._lock:
            for url, token in tokens.items():
                host = self._urls.get(url)
                if host is None:
                    raise ConfigError(f"{url!r} is not a route of a host the netrc serves")
                self._tokens[host] = token
            self._sync()

    def _key(self, registry: str) -> Optional[str]:
        return self._urls.get(registry)  # the host its line is for

    def remove(self) -> None:
        """Take the managed block out of the file (the file goes if we created it)."""
        with self._lock:
            self._tokens.clear()
            remove_block(self.path, delete_if_empty=self._created)

    def watch(self) -> None:
        """Nothing to watch: no tool rewrites netrc (an editor's change is undone at the next refresh)."""

    def stop(self) -> None:
        """Nothing runs in the background."""

    def _sync(self) -> None:
        """Make the file hold the current block (called with the lock held)."""
        if not self.enabled():
            self._tokens.clear()  # removed: stay out of the file until configured again
            return
        lines = [f"machine {host} login {self._hosts[host].username} password {token}"
                 for host, token in sorted(self._tokens.items())]
        text = read(self.path)
        if text is None:
            self._created = True
            text = ""
        new = render(text, lines)
        if new != text:
            _replace(self.path, new)
        elif stat.S_IMODE(os.stat(self.path).st_mode) != 0o600:
            os.chmod(self.path, 0o600)


def read(path: Path) -> Optional[str]:
    """The file's text (None when absent); a symlink is refused rather than written through."""
    try:
        if path.is_symlink():
            raise ConfigError(f"{path} is a symlink; credhelper does not write through it "
                              "(point NETRC at a plain file)")
        return path.read_bytes().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return None


def has_block(path: Path) -> bool:
    """Whether the file holds a credhelper block."""
    text = read(path) or ""
    return without_block(text) != text


def remove_block(path: Path, delete_if_empty: bool = False) -> bool:
    """Take the block out of ``path``, leaving the rest as it was; whether anything changed."""
    text = read(path)
    if text is None:
        return False
    kept = without_block(text)
    if kept == text:
        return False
    if not kept and delete_if_empty:
        path.unlink()
    else:
        _replace(path, kept)
    return True


def _replace(path: Path, text: str) -> None:
    write_atomic(path, text.encode("utf-8", "surrogateescape"), 0o600,
                 prefix=f".{path.name}.credhelper-")


def block_entries(path: Path) -> Dict[str, Tuple[str, str]]:
    """host -> (login, password) of the lines inside the block (doctor compares, never prints)."""
    text = read(path) or ""
    start, end = text.find(BEGIN), text.find(END)
    found: Dict[str, Tuple[str, str]] = {}
    if start < 0 or end < start:
        return found
    for line in text[start:end].splitlines():
        words = line.split()
        if len(words) == 6 and words[0::2] == ["machine", "login", "password"]:
            found[words[1]] = (words[3], words[5])
    return found


def other_entries(path: Path, hosts: Iterable[str]) -> List[str]:
    """Hosts among ``hosts`` that also have a ``machine`` entry (or a ``default``) outside the block."""
    text = without_block(read(path) or "")
    words = re.sub(r"#[^\n]*", " ", text).split()
    named = {words[i + 1].lower() for i, w in enumerate(words[:-1]) if w == "machine"}
    # a `default` entry needs no check: every reader tries the machine entries first
    return sorted(set(hosts) & named)
