"""A throwaway certificate authority for the emulator: one CA, one server cert, client certs.

Everything is kept in the emulator's work directory so a restarted emulator keeps the trust that
clients (git, pip, npm, MSAL) were already given.
"""

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsFiles:
    """Where the CA certificate and the server's cert and key live."""

    ca_file: Path
    server_cert: Path
    server_key: Path


def new_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_private(path: Path, data: bytes) -> None:
    """Write a file that holds key material: 0600 from the first byte."""
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, 0o600)


def load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    """The RSA key stored at ``path``, generating and storing one on first use."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key
    key = new_key()
    write_private(path, key_pem(key))
    return key


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "credhelper emulator")])


def _builder(subject: str, issuer: x509.Name, public_key: rsa.RSAPublicKey,
             days: int) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder()
            .subject_name(_name(subject)).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days)))


def _make_ca(key: rsa.RSAPrivateKey) -> x509.Certificate:
    builder = (_builder("credhelper emulator CA", _name("credhelper emulator CA"),
                        key.public_key(), 3650)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                            False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False))
    return builder.sign(key, hashes.SHA256())


def _make_server(ca_cert: x509.Certificate, ca_key: rsa.RSAPrivateKey,
                 key: rsa.RSAPrivateKey) -> x509.Certificate:
    alt_names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                 x509.IPAddress(ipaddress.ip_address("::1"))]
    builder = (_builder("localhost", ca_cert.subject, key.public_key(), 825)
               .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    return builder.sign(ca_key, hashes.SHA256())


def ensure_tls(workdir: Path) -> TlsFiles:
    """The CA and server certificate in ``workdir``, made on first use."""
    files = TlsFiles(workdir / "ca.pem", workdir / "server.pem", workdir / "server.key")
    if files.ca_file.exists() and files.server_cert.exists() and files.server_key.exists():
        return files
    ca_key = load_or_create_key(workdir / "ca.key")
    ca_cert = _make_ca(ca_key)
    server_key = new_key()
    server_cert = _make_server(ca_cert, ca_key, server_key)
    write_private(files.server_key, key_pem(server_key))
    files.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return files


def self_signed_client_cert(common_name: str) -> Tuple[bytes, x509.Certificate]:
    """A client certificate for an app registration: (PEM with key then cert, the cert)."""
    key = new_key()
    cert = _builder(common_name, _name(common_name), key.public_key(), 365).sign(key, hashes.SHA256())
    return key_pem(key) + cert.public_bytes(serialization.Encoding.PEM), cert
