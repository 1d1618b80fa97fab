"""The Emulator: an Entra-shaped IdP, a managed-identity endpoint, a private feed server and an
ACR-shaped container registry, each on its own loopback port, started and stopped together.
"""

import json
import os
import secrets
import threading
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

from . import ca, jwt
from .directory import EXCHANGE_AUDIENCE, App, FederatedSpec
from .feeds import FeedServer, default_content
from .idp import IdentityProvider
from .msi import ManagedIdentityEndpoint
from .registry import Registry
from .web import Server, server_tls
from .workload import SUBJECTS, mint

TENANT = "contoso"
STATE_FILE = "emulator.json"
WORKSPACE_SUBJECT = SUBJECTS["workspace"]
# One app per platform, each trusting only its issuer's default subject (Entra matches exactly).
WORKLOAD_APPS = {"ona-app": "ona", "actions-app": "actions", "aks-app": "aks"}


class Emulator:
    """Local IdP + feeds over HTTPS with a generated CA; a context manager."""

    def __init__(self, workdir: Union[str, Path], tenant: str = TENANT, idp_port: int = 0,
                 feed_port: int = 0, msi_port: int = 0, registry_port: int = 0) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tenant = tenant
        self._ports = (idp_port, feed_port, msi_port, registry_port)
        self._stopping = threading.Event()
        self._servers: list = []
        tls = ca.ensure_tls(self.workdir)
        self.ca_file: Path = tls.ca_file
        self._tls = server_tls(str(tls.server_cert), str(tls.server_key))
        self.idp = IdentityProvider(
            jwt.SigningKey(ca.load_or_create_key(self.workdir / "idp_signing.key")),
            jwt.SigningKey(ca.load_or_create_key(self.workdir / "workspace_issuer.key")),
            self._stopping)
        self.msi = ManagedIdentityEndpoint(self.idp, tenant, self._stopping)
        self.feeds = FeedServer(self.workdir / "feeds", self.idp)
        self.idp.feed_log = self.feeds.log
        self.registry = Registry(self.idp)
        self.client_secret = secrets.token_urlsafe(32)
        self.idp.remember(self.client_secret)
        self.cert_file = self.workdir / "cert-app.pem"
        self.idp_base = self.feed_base = self.msi_endpoint = self.registry_base = ""

    def __repr__(self) -> str:
        return "Emulator(idp_base={!r}, feed_base={!r})".format(self.idp_base, self.feed_base)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "Emulator":
        """Bind the ports, register the default apps and serve in background threads."""
        idp_port, feed_port, msi_port, registry_port = self._ports
        idp_server = Server(self.idp, "127.0.0.1", idp_port, self._tls)
        self.idp_base = self.idp.base = "https://127.0.0.1:{}".format(idp_server.port)
        msi_server = Server(self.msi, "127.0.0.1", msi_port)
        self.msi_endpoint = "http://127.0.0.1:{}/msi/token".format(msi_server.port)
        feed_server = Server(self.feeds, "127.0.0.1", feed_port, self._tls)
        self.feed_base = self.feeds.base = "https://localhost:{}".format(feed_server.port)
        registry_server = Server(self.registry, "127.0.0.1", registry_port, self._tls)
        self.registry_base = self.registry.base = "https://localhost:{}".format(registry_server.port)
        self._servers = [idp_server, msi_server, feed_server, registry_server]
        default_content(self.feeds)
        self.registry.add_image("demo/hello", "1.0")
        for name in SUBJECTS:
            self.idp.directory.issuers[self.idp.workload.issuer(name)] = \
                self.idp.workspace_key.public_key
        self._register_defaults()
        for server in self._servers:
            server.start()
        # the state file announces a ready emulator (to `gp`, the demo, other processes)
        temp = self.workdir / (STATE_FILE + ".tmp")
        ca.write_private(temp, json.dumps(self.describe(), indent=2).encode())
        os.replace(temp, self.workdir / STATE_FILE)
        return self

    def stop(self) -> None:
        """Stop every server; requests held by a timeout fault are released."""
        self._stopping.set()
        for server in self._servers:
            server.stop()
        self._servers = []
        try:
            os.unlink(self.workdir / STATE_FILE)
        except FileNotFoundError:
            pass

    def describe(self) -> Dict[str, object]:
        """What clients need to know about this emulator; no secret values except the MSI header."""
        return {
            "pid": os.getpid(), "ca_file": str(self.ca_file), "idp_base": self.idp_base,
            "tenant": self.tenant, "authority": "{}/{}".format(self.idp_base, self.tenant),
            "feed_base": self.feed_base, "git_url": self.git_url(), "pypi_url": self.pypi_url,
            "npm_url": self.npm_url, "cargo_index": self.cargo_index,
            "registry_host": self.registry_host, "workspace_issuer": self.workspace_issuer,
            "apps": {"federated": "fed-app", "client_secret": "secret-app", "certificate": "cert-app",
                     "device_code": "public-app", "managed_identity": "mi-app"},
            "workspace_subject": WORKSPACE_SUBJECT,
            "workload_issuers": {name: self.idp.workload.issuer(name) for name in SUBJECTS},
            "workload_subjects": dict(SUBJECTS),
            "workload_apps": dict(WORKLOAD_APPS),
            "actions_request_url": self.idp.workload.actions_request_url,
            "client_secret_file": str(self.workdir / "client_secret"), "cert_file": str(self.cert_file),
            "msi_endpoint": self.msi_endpoint, "msi_header": self.msi_header,
            "admin": self.idp_base + "/_emulator/",
        }

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- feeds ---------------------------------------------------------------------------------
    def git_url(self, repo: str = "demo.git") -> str:
        """The clone URL of a repo on the feed server."""
        return "{}/git/{}".format(self.feed_base, repo)

    @property
    def pypi_url(self) -> str:
        """The PEP 503 index URL (``--index-url``)."""
        return self.feed_base + "/pypi/simple/"

    @property
    def pypi_upload_url(self) -> str:
        """PyPI's legacy upload API (twine's ``--repository-url``, ``uv publish --publish-url``)."""
        return self.feed_base + "/pypi/legacy/"

    @property
    def open_pypi_url(self) -> str:
        """The same index without auth; served only while ``feeds.open_access`` is True."""
        return self.feed_base + "/open/pypi/simple/"

    @property
    def npm_url(self) -> str:
        """The npm registry URL."""
        return self.feed_base + "/npm/"

    @property
    def cargo_index(self) -> str:
        """The cargo sparse registry's index URL (``sparse+`` and the feed's ``/cargo/``)."""
        return "sparse+" + self.feed_base + "/cargo/"

    @property
    def registry_host(self) -> str:
        """The container registry as docker names it: ``localhost:PORT``."""
        return self.registry.host

    @property
    def open_npm_url(self) -> str:
        """The same registry without auth; served only while ``feeds.open_access`` is True."""
        return self.feed_base + "/open/npm/"

    # -- identities ----------------------------------------------------------------------------
    @property
    def workspace_issuer(self) -> str:
        """The OIDC issuer standing in for the workspace (Gitpod's ``gp idp token``)."""
        return self.idp.workspace_issuer

    @property
    def apps(self) -> Dict[str, App]:
        """App registrations by client id."""
        return self.idp.directory.apps

    @property
    def msi_header(self) -> str:
        """The secret the managed-identity endpoint wants in ``X-IDENTITY-HEADER``."""
        return self.msi.header

    def workload_issuer(self, name: str) -> str:
        """The ``iss`` standing in for ``name``: "workspace" (Gitpod), "ona", "actions", "aks"."""
        return self.idp.workload.issuer(name)

    def mint_workload_token(self, name: str, subject: Optional[str] = None,
                            audience: str = EXCHANGE_AUDIENCE, lifetime: int = 3600) -> str:
        """A token from issuer ``name`` (its default subject is the one ``WORKLOAD_APPS`` trust)."""
        return self.idp.workload.mint(name, subject, audience, lifetime)

    @property
    def actions_request_url(self) -> str:
        """``ACTIONS_ID_TOKEN_REQUEST_URL`` of the GitHub Actions stand-in (over HTTPS)."""
        return self.idp.workload.actions_request_url

    @property
    def actions_request_token(self) -> str:
        """``ACTIONS_ID_TOKEN_REQUEST_TOKEN``: the bearer its token endpoint wants."""
        return self.idp.workload.actions_request_token

    def write_federated_token_file(self, path: Union[str, Path], subject: Optional[str] = None,
                                   lifetime: int = 3600) -> str:
        """Write an AKS-issuer token to ``path`` (0600), as the kubelet projects it; returns it."""
        token = self.mint_workload_token("aks", subject, lifetime=lifetime)
        temp = Path(str(path) + ".tmp")
        ca.write_private(temp, token.encode())
        os.replace(temp, path)   # kubelet swaps the file whole; a reader never sees half a token
        return token

    def register_app(self, client_id: str, secret: Optional[str] = None,
                     certificate_pem: Optional[Union[str, bytes]] = None,
                     federated: Sequence[FederatedSpec] = (), public: bool = False,
                     managed_identity: bool = False) -> App:
        """Add an app registration; ``federated`` holds ``(issuer, subject[, audience])``."""
        return self.idp.directory.register(client_id, secret, certificate_pem, federated, public,
                                           managed_identity)

    def mint_workspace_token(self, subject: str = WORKSPACE_SUBJECT,
                             audience: str = EXCHANGE_AUDIENCE, lifetime: int = 3600) -> str:
        """An ID token from the workspace issuer, as ``gp idp token`` prints it."""
        return mint_workspace_token(self.idp.workspace_key, self.workspace_issuer, subject,
                                    audience, lifetime)

    def _register_defaults(self) -> None:
        self.register_app("fed-app", federated=[(self.workspace_issuer, WORKSPACE_SUBJECT)])
        self.register_app("secret-app", secret=self.client_secret)
        if self.cert_file.exists():
            pem = self.cert_file.read_bytes()
        else:
            pem, _ = ca.self_signed_client_cert("cert-app")
            ca.write_private(self.cert_file, pem)
        self.register_app("cert-app", certificate_pem=pem)
        self.register_app("public-app", public=True)
        self.register_app("mi-app", managed_identity=True)
        for client_id, name in WORKLOAD_APPS.items():
            self.register_app(client_id, federated=[(self.workload_issuer(name), SUBJECTS[name])])


def mint_workspace_token(key: jwt.SigningKey, issuer: str, subject: str = WORKSPACE_SUBJECT,
                         audience: str = EXCHANGE_AUDIENCE, lifetime: int = 3600) -> str:
    """Sign a workspace ID token with ``key``; shared by the Emulator and the fake ``gp``."""
    return mint(key, issuer, subject, audience, lifetime)
