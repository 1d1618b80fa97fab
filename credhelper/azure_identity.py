"""A loopback managed-identity endpoint, App Service-shaped, for the Azure SDKs in the workspace.

azure-identity's ``DefaultAzureCredential`` (and ``ManagedIdentityCredential``) finds it through
``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER``: ``GET /msi/token?api-version=2019-08-01&resource=R``
with ``X-IDENTITY-HEADER``. The daemon answers from its token slots, only for the scopes listed
under ``[azure]`` and only to processes of its own uid (the kernel's socket table says who owns
the connecting port). The header is random per daemon start and lives in a 0600 file beside the
socket; nothing is kept at rest that outlives the daemon.
"""

import hmac
import json
import logging
import os
import secrets
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple
from urllib.parse import parse_qsl, urlsplit

from .config import AzureIdentity
from .errors import AuthFailed, CredhelperError, IdpUnavailable, NotSignedIn

if TYPE_CHECKING:
    from .ops import Core

log = logging.getLogger("credhelper.azure")

API_VERSION = "2019-08-01"
PATH = "/msi/token"
ENV_FILE = "azure-identity.env"
# The other ways azure-identity names a user-assigned identity; any of them that is not our
# account's client id asks for an identity we do not hold.
_IDENTITY_PARAMS = ("client_id", "principal_id", "object_id", "mi_res_id", "msi_res_id")

# (account, scopes) -> (access token, expires_on); raises CredhelperError
TokenSource = Callable[[str, Tuple[str, ...]], Tuple[str, float]]
Audit = Callable[..., None]


def socket_owner(local: Tuple[str, int], remote: Tuple[str, int]) -> Optional[int]:
    """The uid owning the TCP socket at ``remote`` connected to ``local``, from /proc/net/tcp*."""
    wanted = {(_hex_address(remote), _hex_address(local))}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines, None)
                for line in lines:
                    fields = line.split()
                    if len(fields) > 7 and (fields[1], fields[2]) in wanted:
                        return int(fields[7])
        except OSError:
            continue
    return None


def _hex_address(address: Tuple[str, int]) -> str:
    """An (ip, port) as /proc/net/tcp spells it (IPv4 only; IPv6 tables are read the same way)."""
    packed = socket.inet_aton(address[0])
    return "{:08X}:{:04X}".format(int.from_bytes(packed, "little"), address[1])


class AzureIdentityEndpoint:
    """The listener: ``start()`` binds 127.0.0.1 on a free port; ``env_lines()`` for clients."""

    def __init__(self, settings: AzureIdentity, client_id: str, tokens: TokenSource,
                 audit: Audit) -> None:
        self.settings = settings
        self.client_id = client_id
        self.tokens = tokens
        self.audit = audit
        self.header = secrets.token_urlsafe(32)
        self.env_file: Optional[Path] = None
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    def __repr__(self) -> str:
        return "AzureIdentityEndpoint(account={!r})".format(self.settings.account)

    @property
    def url(self) -> str:
        """``IDENTITY_ENDPOINT``."""
        assert self._server is not None
        return "http://127.0.0.1:{}{}".format(self._server.server_address[1], PATH)

    def start(self, env_dir: Path) -> "AzureIdentityEndpoint":
        """Listen on loopback, serve in a background thread, write the env file into ``env_dir``."""
        endpoint = self

        class Handler(_Handler):
            owner = endpoint

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2}, daemon=True,
                                        name="azure-identity")
        self._thread.start()
        self.env_file = self._write_env(env_dir)
        return self

    def stop(self) -> None:
        """Stop listening and remove the env file (its header is worth nothing any more)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.env_file is not None:
            try:
                os.unlink(self.env_file)
            except FileNotFoundError:
                pass
            self.env_file = None

    def retarget(self, settings: AzureIdentity, client_id: str) -> None:
        """Serve another account or scope list (a reload) on the same port with the same header."""
        self.settings, self.client_id = settings, client_id

    def status(self) -> Dict[str, Any]:
        """Where it listens and what it serves; never the header."""
        return {"endpoint": self.url, "account": self.settings.account,
                "scopes": list(self.settings.scopes), "env_file": str(self.env_file)}

    def env_text(self) -> str:
        """What a shell sources (``. FILE``) to point the Azure SDKs here."""
        return "export IDENTITY_ENDPOINT={}\nexport IDENTITY_HEADER={}\n".format(self.url,
                                                                                self.header)

    def _write_env(self, directory: Path) -> Path:
        """Write the env file (0600) into the daemon's private socket directory."""
        from .atomic import write_atomic

        path = directory / ENV_FILE
        write_atomic(path, self.env_text().encode(), 0o600)
        return path

    def answer(self, query: Dict[str, str], header: str) -> Tuple[int, Dict[str, Any], str]:
        """(HTTP status, JSON body, audit outcome) for one token request."""
        if not hmac.compare_digest(header.encode(), self.header.encode()):
            return 401, _error(401, "X-IDENTITY-HEADER missing or wrong"), "bad_header"
        if query.get("api-version") != API_VERSION:
            return 400, _error(400, "api-version {} is required".format(API_VERSION)), "bad_request"
        for name in _IDENTITY_PARAMS:
            if query.get(name) and query[name] != self.client_id:
                return 400, _error(400, "no such identity here: only {}'s ({})".format(
                    self.settings.account, self.client_id)), "other_identity"
        resource = query.get("resource", "")
        scope = self._scope_for(resource)
        if scope is None:
            return 400, _error(400, "resource {!r} is not among the scopes [azure] allows".format(
                resource[:100])), "scope_not_allowed"
        try:
            token, expires_on = self.tokens(self.settings.account, (scope,))
        except NotSignedIn as exc:
            return 400, _error(400, exc.message), exc.code
        except IdpUnavailable as exc:
            return 503, _error(503, exc.message), exc.code
        except (AuthFailed, CredhelperError) as exc:
            return 400, _error(400, exc.message), exc.code
        return 200, {"access_token": token, "expires_on": str(int(expires_on)),
                     "resource": resource, "token_type": "Bearer",
                     "client_id": self.client_id}, "ok"

    def _scope_for(self, resource: str) -> Optional[str]:
        # azure-identity sends the scope minus "/.default"; some callers keep a trailing slash
        wanted = resource.rstrip("/")
        if not wanted:
            return None
        for scope in self.settings.scopes:
            if scope[:-len("/.default")].rstrip("/") == wanted:
                return scope
        return None


class _Handler(BaseHTTPRequestHandler):
    owner: AzureIdentityEndpoint
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # the audit log records each request, without the query's values

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        """One token request."""
        owner = self.owner
        peer_uid = socket_owner(self.connection.getsockname()[:2], self.client_address[:2])
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if peer_uid != os.getuid():
            status, body, outcome = 403, _error(403, "only the daemon's own user may ask"), "forbidden"
        elif parts.path.rstrip("/") != PATH:
            status, body, outcome = 404, _error(404, "not found"), "not_found"
        else:
            try:
                status, body, outcome = owner.answer(query, self.headers.get("X-IDENTITY-HEADER", ""))
            except Exception:  # noqa: BLE001 - a bug here must not end the listener
                log.exception("azure identity endpoint failed")
                status, body, outcome = 500, _error(500, "internal error"), "error"
        owner.audit(event="azure_token", port=self.client_address[1], uid=peer_uid,
                    resource=query.get("resource", "")[:200], outcome=outcome)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        """Not part of the protocol."""
        self.send_error(405)


def _error(status: int, message: str) -> Dict[str, Any]:
    return {"statusCode": status, "message": message, "error": "invalid_request",
            "error_description": message}


def match_config(core: "Core", env_dir: Path) -> None:
    """Start, retarget or stop ``core.azure`` to match the config's ``[azure]``."""
    settings = core.config.azure
    if settings is None:
        if core.azure is not None:
            core.azure.stop()
            core.azure = None
        return
    client_id = core.config.accounts[settings.account].client_id
    if core.azure is not None:
        core.azure.retarget(settings, client_id)
        return

    def token(account: str, scopes: Tuple[str, ...]) -> Tuple[str, float]:
        held = core.tokens.get(account, scopes)
        if any(c in held.access_token for c in "\r\n\0"):
            raise AuthFailed("the identity provider returned a token with control characters")
        return held.access_token, held.expires_on

    core.azure = AzureIdentityEndpoint(settings, client_id, token, core.audit.write).start(env_dir)
    log.info("Azure SDK endpoint on %s; its environment in %s", core.azure.url,
             core.azure.env_file)
