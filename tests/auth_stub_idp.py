"""A small HTTPS identity provider for the auth tests, shaped like Entra's v2 endpoints.

Tests script the token endpoint's next answers (429, 500, hang, OAuth errors, success) and read
back what was asked. It stands in until the shared emulator lands; it is not a product module.
"""

import base64
import datetime
import hashlib
import ipaddress
import json
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from credhelper.config import Account


def make_account(**fields: Any) -> "Account":
    """An Account with every seam field, defaulting the optional ones to None."""
    values: Dict[str, Any] = dict(
        name="work", client_id="app-1", flow="client_secret", authority=None,
        oidc_authority=None, assertion_command=None, assertion_file=None, client_secret_env=None,
        certificate_file=None, managed_identity_client_id=None, ca_bundle=None)
    values.update(fields)
    return Account(**values)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca_and_server(directory: Path) -> Tuple[Path, Path, Path]:
    """A CA file, and a server cert/key for 127.0.0.1 and localhost signed by it."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = (x509.CertificateBuilder().subject_name(_name("stub ca")).issuer_name(_name("stub ca"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(
              digital_signature=True, key_cert_sign=True, crl_sign=True,
              content_commitment=False, key_encipherment=False, data_encipherment=False,
              key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "srv.pem", directory / "srv.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return ca_file, cert_file, key_file


def make_client_certificate(path: Path) -> x509.Certificate:
    """Write an RSA key and its self-signed certificate to one PEM file, as Entra SPs use."""
    now = datetime.datetime.now(datetime.timezone.utc)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder().subject_name(_name("sp")).issuer_name(_name("sp"))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM))
    return cert


def verify_ps256(assertion: str, cert: x509.Certificate) -> Dict[str, Any]:
    """Check an MSAL certificate assertion (x5t#S256 and PS256 signature); return its header."""
    head, body, sig = assertion.split(".")
    header = json.loads(unb64url(head))
    expected = b64url(cert.fingerprint(hashes.SHA256()))
    assert header["alg"] == "PS256" and header["x5t#S256"].rstrip("=") == expected, header
    cert.public_key().verify(
        unb64url(sig), f"{head}.{body}".encode(),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=hashes.SHA256.digest_size),
        hashes.SHA256())
    return header


class StubIdp:
    """The server; ``script`` holds the token endpoint's next answers, ``requests`` what came."""

    tenant = "contoso"

    def __init__(self, directory: Path) -> None:
        self.ca_file, cert_file, key_file = make_ca_and_server(directory)
        self.script: List[Tuple[Any, ...]] = []
        self.requests: List[Dict[str, Any]] = []
        self.issued: List[str] = []          # every access and refresh token handed out
        self.expires_in, self.refresh_in = 3600, 1800
        self.client_secret: Optional[str] = None
        self.client_cert: Optional[x509.Certificate] = None
        self.msi_header = "msi-" + secrets.token_hex(8)
        self.device: Dict[str, Any] = {}     # user_code, device_code, outcome
        self.revoked = False
        self._release = threading.Event()
        self._lock = threading.Lock()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert_file), str(key_file))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.base = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.authority = f"{self.base}/{self.tenant}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def reset(self) -> None:
        """Back to the defaults between tests (the server and its CA stay)."""
        self.script.clear()
        self.requests.clear()
        self.expires_in, self.refresh_in = 3600, 1800
        self.client_secret = None
        self.client_cert = None
        self.device = {}
        self.revoked = False

    def start(self) -> "StubIdp":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def count(self, grant_type: Optional[str] = None, path: str = "/oauth2/v2.0/token") -> int:
        return sum(1 for r in self.requests if r["path"].endswith(path)
                   and (grant_type is None or r["form"].get("grant_type") == grant_type))

    def approve(self, user: str = "alice@contoso.com") -> None:
        self.device["outcome"] = ("approved", user)

    def deny(self) -> None:
        self.device["outcome"] = ("denied", None)

    def new_token(self, kind: str) -> str:
        token = f"{kind}-{secrets.token_urlsafe(24)}"
        with self._lock:
            self.issued.append(token)
        return token

    def tokens_for(self, user: Optional[str]) -> Dict[str, Any]:
        body: Dict[str, Any] = {"token_type": "Bearer", "access_token": self.new_token("at"),
                                "expires_in": self.expires_in, "ext_expires_in": self.expires_in}
        if self.refresh_in:
            body["refresh_in"] = self.refresh_in
        if user:
            uid, utid = "uid-" + hashlib.sha1(user.encode()).hexdigest()[:8], "tid-contoso"
            now = int(time.time())
            claims = {"iss": f"{self.base}/{utid}/v2.0", "sub": uid, "aud": "public-app",
                      "exp": now + 3600, "iat": now, "nbf": now, "oid": uid, "tid": utid,
                      "preferred_username": user, "name": user}
            body.update(
                refresh_token=self.new_token("rt"), scope="openid profile offline_access x/.default",
                id_token=".".join([b64url(b'{"alg":"none"}'),
                                   b64url(json.dumps(claims).encode()), ""]),
                client_info=b64url(json.dumps({"uid": uid, "utid": utid}).encode()))
        return body


def _handler_for(idp: StubIdp) -> type:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _reply(self, status: int, body: Any, headers: Optional[Dict[str, str]] = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _record(self, form: Dict[str, str]) -> None:
            url = urlsplit(self.path)
            with idp._lock:
                idp.requests.append({
                    "method": self.command, "path": url.path, "form": form,
                    "query": {k: v[0] for k, v in parse_qs(url.query).items()},
                    "headers": {k.lower(): v for k, v in self.headers.items()}})

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            self._record({})
            if url.path.endswith("/.well-known/openid-configuration"):
                prefix = url.path[: -len("/.well-known/openid-configuration")]
                issuer_path = prefix[: -len("/v2.0")] if prefix.endswith("/v2.0") else prefix
                base = idp.base + issuer_path
                return self._reply(200, {
                    "issuer": base if not prefix.endswith("/v2.0") else base + "/v2.0",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode"})
            if url.path == "/msi/token":
                if self.headers.get("X-IDENTITY-HEADER") != idp.msi_header:
                    return self._reply(401, {"statusCode": 401, "message": "bad header"})
                if self._scripted():
                    return None
                query = parse_qs(url.query)
                return self._reply(200, {
                    "access_token": idp.new_token("mi"), "token_type": "Bearer",
                    "expires_on": str(int(time.time()) + idp.expires_in),
                    "resource": query.get("resource", [""])[0]})
            self._reply(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            self._record(form)
            if self._scripted():
                return None
            if self.path.endswith("/oauth2/v2.0/devicecode"):
                idp.device = {"device_code": secrets.token_urlsafe(16),
                              "user_code": secrets.token_hex(4).upper(), "outcome": None}
                return self._reply(200, {
                    "device_code": idp.device["device_code"], "user_code": idp.device["user_code"],
                    "verification_uri": f"{idp.base}/device", "expires_in": 900, "interval": 1,
                    "message": f"Open {idp.base}/device and enter {idp.device['user_code']}"})
            if not self.path.endswith("/oauth2/v2.0/token"):
                return self._reply(404, {"error": "not_found"})
            grant = form.get("grant_type")
            if grant == "client_credentials":
                return self._client_credentials(form)
            if grant == "urn:ietf:params:oauth:grant-type:device_code":
                outcome = idp.device.get("outcome")
                if form.get("device_code") != idp.device.get("device_code") or outcome is None:
                    return self._reply(400, {"error": "authorization_pending"})
                if outcome[0] == "denied":
                    return self._reply(400, {"error": "access_denied", "error_codes": [50126]})
                idp.revoked = False
                idp.device["user"] = outcome[1]
                return self._reply(200, idp.tokens_for(outcome[1]))
            if grant == "refresh_token":
                if idp.revoked or form.get("refresh_token") not in idp.issued:
                    return self._reply(400, {
                        "error": "invalid_grant", "error_codes": [70043],
                        "error_description": "AADSTS70043: The refresh token has expired"})
                return self._reply(200, idp.tokens_for(idp.device.get("user")))
            self._reply(400, {"error": "unsupported_grant_type"})

        def _client_credentials(self, form: Dict[str, str]) -> None:
            if idp.client_secret is not None and form.get("client_secret") != idp.client_secret:
                return self._reply(401, {
                    "error": "invalid_client", "error_codes": [7000215],
                    "error_description": "AADSTS7000215: Invalid client secret provided. "
                                         f"echo={form.get('client_secret')}"})
            if idp.client_cert is not None:
                try:
                    verify_ps256(form.get("client_assertion", ""), idp.client_cert)
                except Exception:
                    return self._reply(401, {"error": "invalid_client", "error_codes": [700027]})
            self._reply(200, idp.tokens_for(None))

        def _scripted(self) -> bool:
            """Play the next scripted answer, if any; True when it was played."""
            with idp._lock:
                step = idp.script.pop(0) if idp.script else None
            if step is None:
                return False
            kind = step[0]
            if kind == "429":
                self._reply(429, {"error": "throttled"}, {"Retry-After": str(step[1])})
            elif kind == "500":
                self._reply(500, {"error": "server_error"})
            elif kind == "hang":
                idp._release.wait(step[1])
                try:
                    self._reply(500, {"error": "too_late"})
                except OSError:  # the client gave up long ago, as it should
                    pass
            elif kind == "error":
                body = {"error": step[1], "error_description": step[3] if len(step) > 3 else ""}
                if step[2]:
                    body["error_codes"] = [step[2]]
                if len(step) > 4:
                    body["suberror"] = step[4]
                self._reply(400, body)
            elif kind == "raw":
                self._reply(200, step[1])
            return True

    return Handler

