"""The HTTP client MSAL talks through: explicit trust, a bounded wait, failures raised as ours.

MSAL wraps any ``http_client`` in its ThrottledHttpClient, which remembers 429 and 5xx answers
for their Retry-After (in real time, invisible to our injected clock) and 400 answers for 60 s.
We raise ``Throttled`` / ``IdpUnavailable`` before MSAL ever sees such a response, and hand MSAL
an ``http_cache`` that keeps nothing, so every decision to retry is made by our scheduler.

``ca_bundle`` is extra trust, not replacement trust: we write one bundle made of what requests
would trust anyway (``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` when set, else certifi) followed by
``ca_bundle``, and pass it as ``verify=`` on every request. Passing it per request matters:
requests lets those variables override ``Session.verify``, but never an explicit ``verify``.
The union keeps a corporate proxy CA from the environment working while the emulator's (or a
private authority's) CA is added; the file holds only public certificates, is written once per
distinct content (so every account shares one TLS context) and is removed at exit.
"""

import atexit
import email.utils
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import MutableMapping
from typing import Any, Dict, Iterator, Optional, Union
from urllib.parse import urlsplit

import requests
import requests.adapters

from .. import environment
from ..errors import ConfigError, IdpUnavailable, Throttled

DEFAULT_TIMEOUT = 10.0
_SHARED_LOCK = threading.Lock()
_BUNDLES: Dict[bytes, str] = {}  # sha256 of a combined bundle -> its file
_ADAPTER: Optional["requests.adapters.HTTPAdapter"] = None
_MAX_RETRY_AFTER = 3600.0


def http_timeout(explicit: Optional[float] = None) -> float:
    """The IdP request timeout: ``explicit``, else ``$CREDHELPER_HTTP_TIMEOUT``, else 10 s."""
    if explicit is not None:
        return float(explicit)
    raw = environment.http_timeout()
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


class NoStore(MutableMapping):
    """An ``http_cache`` for MSAL that remembers nothing (a corrected secret works at once)."""

    def __getitem__(self, key: Any) -> Any:
        raise KeyError(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def __delitem__(self, key: Any) -> None:
        raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _default_trust_file() -> Optional[str]:
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        value = os.environ.get(var)
        if value and os.path.isfile(value):
            return value
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi comes with requests
        return None
    return certifi.where()


def _combined_bundle(ca_bundle: str) -> str:
    """Write default trust + ``ca_bundle`` to a private temp file and return its path."""
    try:
        with open(os.path.expanduser(ca_bundle), "rb") as f:
            extra = f.read()
    except OSError as exc:
        raise ConfigError(f"ca_bundle {ca_bundle}: {exc.strerror or exc}") from exc
    if b"-----BEGIN CERTIFICATE-----" not in extra:
        raise ConfigError(f"ca_bundle {ca_bundle}: no PEM certificate in it")
    base = b""
    base_path = _default_trust_file()
    if base_path:
        try:
            with open(base_path, "rb") as f:
                base = f.read()
        except OSError:
            base = b""  # then ca_bundle alone is all we can trust
    combined = base.rstrip(b"\n") + b"\n" + extra if base else extra
    digest = hashlib.sha256(combined).digest()
    with _SHARED_LOCK:
        path = _BUNDLES.get(digest)
        if path is not None and os.path.exists(path):
            return path
        fd, path = tempfile.mkstemp(prefix="credhelper-ca-", suffix=".pem")
        with os.fdopen(fd, "wb") as f:
            f.write(combined)
        atexit.register(_unlink, path)
        _BUNDLES[digest] = path
    return path


def _shared_adapter() -> "requests.adapters.HTTPAdapter":
    global _ADAPTER
    with _SHARED_LOCK:
        if _ADAPTER is None:
            _ADAPTER = requests.adapters.HTTPAdapter()
        return _ADAPTER


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def retry_after_seconds(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Parse a Retry-After header (seconds or HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


def _where(url: str) -> str:
    """Scheme, host and path only: query strings may carry identifiers we do not echo."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class HttpClient:
    """What MSAL calls ``http_client``: ``post``, ``get``, ``close`` on a requests session."""

    def __init__(self, ca_bundle: Optional[str] = None, timeout: Optional[float] = None) -> None:
        self.timeout = http_timeout(timeout)
        bundle = _combined_bundle(ca_bundle) if ca_bundle else None
        self._verify: Union[bool, str] = bundle or True
        self._session = requests.Session()
        # Every account's session shares one pool manager, and so one TLS context per IdP
        # host and trust file: a context of its own holds the whole CA list, ~0.9 MB each.
        for prefix in ("https://", "http://"):
            self._session.mount(prefix, _shared_adapter())

    def post(self, url: str, params: Any = None, data: Any = None, headers: Any = None,
             **kw: Any) -> requests.Response:
        """POST with our trust and timeout; 429/5xx/unreachable are raised, not returned."""
        return self._send("POST", url, params=params, data=data, headers=headers, **kw)

    def get(self, url: str, params: Any = None, headers: Any = None,
            **kw: Any) -> requests.Response:
        """GET with our trust and timeout; 429/5xx/unreachable are raised, not returned."""
        return self._send("GET", url, params=params, headers=headers, **kw)

    def close(self) -> None:
        """Forget this client's cookies; the pooled connections are shared, the bundle goes at exit."""
        self._session.cookies.clear()

    def _send(self, method: str, url: str, **kw: Any) -> requests.Response:
        kw["verify"] = self._verify
        kw["timeout"] = self.timeout
        try:
            resp = self._session.request(method, url, **kw)
        except requests.exceptions.SSLError as exc:
            raise IdpUnavailable(
                f"TLS verification failed for {_where(url)} (is ca_bundle right?)") from exc
        except requests.exceptions.Timeout as exc:
            raise IdpUnavailable(
                f"{_where(url)} did not answer within {self.timeout:g}s") from exc
        except requests.exceptions.RequestException as exc:
            raise IdpUnavailable(
                f"cannot reach {_where(url)} ({type(exc).__name__})") from exc
        if resp.status_code == 429:
            after = retry_after_seconds(resp.headers.get("Retry-After"))
            raise Throttled(f"{_where(url)} asked us to slow down (HTTP 429)", retry_after=after)
        if resp.status_code >= 500:
            after = retry_after_seconds(resp.headers.get("Retry-After"))
            raise IdpUnavailable(f"{_where(url)} answered HTTP {resp.status_code}",
                                 retry_after=after)
        return resp
