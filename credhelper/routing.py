"""URL → route: the security boundary that decides who may receive a token (DESIGN §6.2, §6.3).

Every URL is reduced to a ``Target`` (scheme, host, port, decoded path segments) before any
comparison, and anything that two parsers could read differently is refused rather than guessed:
userinfo, control characters, backslashes, encoded slashes, lossy IDNA, malformed ports.

Host names: lowercased; non-ASCII labels are IDNA-encoded and must survive the round trip
unchanged (``straße`` or a soft hyphen would map to a different ASCII name than curl's IDNA 2008
would, so they are refused). One trailing dot is dropped: ``dev.azure.com.`` is the absolute
spelling of the same DNS name, so it resolves to the same server and matches the same routes.

Paths: split on ``/``, each segment percent-decoded, then ``.``/``..`` removed, so
``/contoso/%2e%2e/other`` is ``/other``. Empty segments (``//``) are collapsed; servers disagree on
how ``//`` interacts with ``..``, so a path holding both is refused.
"""

import encodings.idna
import functools
import ipaddress
import re
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Sequence, Set, Tuple
from urllib.parse import unquote_to_bytes

from .errors import AmbiguousRoute, ConfigError, NoRoute, RequestError

MAX_URL = 8192
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_\-]{0,61}[a-z0-9_])?\Z")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_FORBIDDEN_ENCODED = re.compile(r"%(?:2[fF]|5[cC])")
_QUERY_OR_FRAGMENT = re.compile(r"[?#]")
_CONTROL = re.compile("[\x00-\x20\x7f-\x9f]")


@dataclass(frozen=True)
class Route:
    """URLs under ``url`` get tokens of ``account`` for ``scopes``."""

    url: str
    account: str
    scopes: Tuple[str, ...]
    username: str


class DuplicateRoute(ConfigError):
    """Two routes with the same URL (after canonicalisation): ``index`` repeats ``first``."""

    def __init__(self, url: str, index: int, first: int) -> None:
        super().__init__(f"route {redact_url(url)} is listed twice")
        self.index, self.first = index, first


class Target(NamedTuple):
    """A URL reduced to what routing compares."""

    scheme: str
    host: str
    port: int
    path: Optional[Tuple[str, ...]]   # decoded segments; None for a host-only request

    @property
    def origin(self) -> str:
        """``https://host`` (with ``:port`` only when not 443), as git config spells it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}" if self.port == 443 else f"https://{host}:{self.port}"


def shorten(text: str, limit: int = 100) -> str:
    """``text`` made safe to quote in a one-line message: printable and at most ``limit`` chars."""
    shown = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text[:limit])
    return shown + "..." if len(text) > limit else shown


def redact_url(url: str, limit: int = 100) -> str:
    """``url`` for a message: userinfo and query masked (they may hold secrets), shortened."""
    url = re.sub(r"\A([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#]*@", r"\1***@", url)
    url = re.sub(r"[?#].*", "?...", url, flags=re.S)
    return shorten(url, limit)


class Refused(RequestError):
    """A URL routing will not even look at; ``why`` is the reason without the URL."""

    def __init__(self, url: str, why: str) -> None:
        super().__init__(f"refusing URL {redact_url(url)!r}: {why}")
        self.why = why


def _refuse(url: str, why: str) -> Refused:
    return Refused(url, why)


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _host(url: str, raw: str) -> str:
    host, why = _host_name(raw)
    if why:
        raise _refuse(url, why)
    return host


@functools.lru_cache(maxsize=256)  # of hosts at most 8 KiB long (MAX_URL)
def _host_name(raw: str) -> Tuple[str, str]:
    """``raw`` as routing compares host names, or "" and why it is refused.

    Remembered: a config's thousands of routes, and the requests, name a few hosts.
    """
    if raw.startswith("["):
        try:
            return str(ipaddress.IPv6Address(raw[1:-1] if raw.endswith("]") else "?")), ""
        except ValueError:
            return "", "bad IPv6 address"
    if "%" in raw:
        return "", "percent-encoding in the host name"
    if any(dot in raw for dot in "\u3002\uff0e\uff61"):
        # IDNA 2008 clients read these as '.', the stdlib codec does not: refuse the disagreement
        return "", "non-ASCII dot in the host name"
    host = raw.lower()
    if host.endswith("."):
        host = host[:-1]
    if not host:
        return "", "empty host"
    labels = []
    for label in host.split("."):
        if not label.isascii():
            try:
                ascii_label = encodings.idna.ToASCII(label).decode("ascii")
                same = encodings.idna.ToUnicode(ascii_label) == label
            except (UnicodeError, ValueError):
                same = False
            if not same:
                return "", "host name does not survive IDNA encoding unchanged"
            label = ascii_label.lower()
        if not _LABEL.match(label):
            return "", "bad host name"
        labels.append(label)
    return ".".join(labels), ""


def _segments(url: str, raw_path: str) -> Optional[Tuple[str, ...]]:
    if _FORBIDDEN_ENCODED.search(raw_path):
        raise _refuse(url, "encoded slash or backslash in the path")
    if _BAD_PERCENT.search(raw_path):
        raise _refuse(url, "bad percent-encoding in the path")
    raw_segments = raw_path.split("/")[1:]
    decoded: List[str] = []
    for raw in raw_segments:
        try:
            segment = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise _refuse(url, "path is not UTF-8") from None
        if _has_control(segment.replace(" ", "")):
            raise _refuse(url, "control character in the path")
        decoded.append(segment)
    interior_empty = "" in decoded[:-1]
    if interior_empty and ".." in decoded:
        raise _refuse(url, "path mixes '//' and '..', which servers resolve differently")
    out: List[str] = []
    for segment in decoded:
        if segment == "..":
            if out:
                out.pop()
        elif segment not in ("", "."):
            out.append(segment)
    return tuple(out) or None


def canonical(url: str) -> Target:
    """Reduce ``url`` to a Target; RequestError for anything malformed, NoRoute for http."""
    if not isinstance(url, str):
        raise RequestError("URL must be a string")
    if len(url) > MAX_URL:
        raise _refuse(url, f"longer than {MAX_URL} characters")
    if _has_control(url):
        raise _refuse(url, "whitespace or control character")
    if "\\" in url:
        raise _refuse(url, "backslash")
    scheme_match = _SCHEME.match(url)
    if not scheme_match:
        raise _refuse(url, "not an absolute URL")
    scheme = scheme_match.group(1).lower()
    if scheme == "http":
        raise NoRoute(f"no route for {redact_url(url)}: plain http never gets a token; use https")
    if scheme != "https":
        raise _refuse(url, f"scheme {shorten(scheme, 20)!r} is not https")
    rest = url[scheme_match.end():]
    if not rest.startswith("//"):
        raise _refuse(url, "missing '//' after the scheme")
    rest = rest[2:]
    end = len(rest)
    for stop in "/?#":
        index = rest.find(stop)
        if index != -1:
            end = min(end, index)
    authority, rest = rest[:end], rest[end:]
    if "@" in authority:
        raise _refuse(url, "user name or password in the URL")
    raw_path = _QUERY_OR_FRAGMENT.split(rest, maxsplit=1)[0]
    host_part, port_part = authority, ""
    bracket = authority.rfind("]")
    colon = authority.rfind(":")
    if colon > bracket:
        host_part, port_part = authority[:colon], authority[colon + 1:]
        if not (port_part.isdigit() and port_part.isascii() and len(port_part) <= 5
                and 0 < int(port_part) < 65536):
            raise _refuse(url, "bad port")
    host = _host(url, host_part)
    port = int(port_part) if port_part else 443
    return Target(scheme, host, port, _segments(url, raw_path))


@functools.lru_cache(maxsize=65536)
def route_target(url: str) -> Target:
    """``canonical`` for a configured route's URL, remembered: config and Router both need it.

    Only for route URLs from the config file; URLs from requests go through ``canonical``.
    """
    return canonical(url)


class _Entry(NamedTuple):
    host: str
    port: int
    path: Tuple[str, ...]
    route: Route
    order: int  # its place in the config, for errors


class Router:
    """Finds the one route allowed to answer a URL."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self._by_origin: Dict[Tuple[str, int], List[_Entry]] = {}
        # a dict, not a scan of the origin's entries: 10,000 routes on one host start in ms
        seen: Dict[Tuple[str, int, Tuple[str, ...]], int] = {}
        for index, route in enumerate(routes):
            try:
                target = route_target(route.url)
            except (RequestError, NoRoute) as exc:
                raise ConfigError(f"route {redact_url(route.url)}: {exc.message}") from exc
            entry = _Entry(target.host, target.port, target.path or (), route, index)
            first = seen.setdefault((entry.host, entry.port, entry.path), index)
            if first != index:
                raise DuplicateRoute(route.url, index, first)
            self._by_origin.setdefault((target.host, target.port), []).append(entry)
        for entries in self._by_origin.values():
            entries.sort(key=lambda e: -len(e.path))   # longest prefix first

    def resolve(self, url: str) -> Route:
        """The route for ``url``; NoRoute, AmbiguousRoute or RequestError otherwise."""
        target = canonical(url)
        entries = self._by_origin.get((target.host, target.port))
        if not entries:
            raise NoRoute(f"no route for {target.origin}")
        if target.path is None:
            if len({(e.route.account, e.route.scopes) for e in entries}) > 1:
                raise AmbiguousRoute(
                    f"{target.origin} has routes for different identities and the request has "
                    "no path; run `credhelper configure git` (it turns on credential.useHttpPath)"
                )
            return entries[-1].route
        for entry in entries:
            if target.path[:len(entry.path)] == entry.path:
                return entry.route
        raise NoRoute(f"no route for {target.origin}/{shorten('/'.join(target.path))}")

    def hosts(self) -> Set[Tuple[str, int]]:
        """Every routed (host, port)."""
        return set(self._by_origin)

    def origins(self) -> List[str]:
        """Every routed origin as git config spells it, sorted."""
        return sorted(Target("https", h, p, None).origin for h, p in self._by_origin)

    def needs_path(self, origin: str) -> bool:
        """Whether requests for ``origin`` must carry a path to get the right (or any) answer.

        True when the origin's routes lead to different identities, or any of them is limited
        to a path prefix (only a request with a path can be held to that prefix).
        """
        target = canonical(origin)
        entries = self._by_origin.get((target.host, target.port), [])
        identities = {(e.route.account, e.route.scopes) for e in entries}
        return len(identities) > 1 or any(e.path for e in entries)
