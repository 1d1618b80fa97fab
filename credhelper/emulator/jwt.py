"""Just enough JWT for the emulator: RS256/PS256 signing and verification, and JWKS export.

Verification here checks the signature only; each caller checks the claims it cares about, the
way Entra reports each failure with its own AADSTS code.
"""

import base64
import hashlib
import json
from typing import Any, Dict, Mapping, Optional, Tuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

Claims = Dict[str, Any]


class JwtError(Exception):
    """A token that is malformed or whose signature does not verify."""


def b64url(data: bytes) -> str:
    """Base64url without padding, as JOSE wants it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of :func:`b64url`; tolerates missing padding."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _padding(alg: str) -> padding.AsymmetricPadding:
    if alg == "RS256":
        return padding.PKCS1v15()
    if alg == "PS256":
        return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
    raise JwtError("unsupported alg {!r}".format(alg))


def key_id(public_key: rsa.RSAPublicKey) -> str:
    """A stable key id: a hash of the modulus."""
    numbers = public_key.public_numbers()
    return b64url(hashlib.sha256(numbers.n.to_bytes(256, "big")).digest()[:16])


def sign(claims: Mapping[str, Any], key: rsa.RSAPrivateKey, kid: Optional[str] = None,
         alg: str = "RS256", extra_headers: Optional[Mapping[str, Any]] = None) -> str:
    """A compact JWS of ``claims`` signed with ``key``."""
    header: Dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid:
        header["kid"] = kid
    header.update(extra_headers or {})
    signing_input = "{}.{}".format(
        b64url(json.dumps(header, separators=(",", ":")).encode()),
        b64url(json.dumps(dict(claims), separators=(",", ":")).encode()))
    signature = key.sign(signing_input.encode("ascii"), _padding(alg), hashes.SHA256())
    return signing_input + "." + b64url(signature)


def decode_unverified(token: str) -> Tuple[Dict[str, Any], Claims]:
    """Header and claims of a JWT, without looking at the signature."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtError("not a JWT")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
    except ValueError as exc:
        raise JwtError("malformed JWT") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JwtError("malformed JWT")
    return header, claims


def verify(token: str, public_key: rsa.RSAPublicKey) -> Claims:
    """The claims of ``token`` if ``public_key`` signed it, else :class:`JwtError`."""
    header, claims = decode_unverified(token)
    signing_input, _, signature = token.rpartition(".")
    alg = header.get("alg", "")
    pad = _padding(alg)
    if alg == "PS256":
        # Signers pick their own salt length (PyJWT: digest length, others: max); accept any.
        pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
    try:
        public_key.verify(b64url_decode(signature), signing_input.encode("ascii"), pad,
                          hashes.SHA256())
    except (InvalidSignature, ValueError) as exc:
        raise JwtError("signature does not verify") from exc
    return claims


def jwk(public_key: rsa.RSAPublicKey, kid: Optional[str] = None) -> Dict[str, Any]:
    """The RSA public key as a JWK."""
    numbers = public_key.public_numbers()
    return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid or key_id(public_key),
            "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big"))}


def public_key_from_jwk(data: Mapping[str, Any]) -> rsa.RSAPublicKey:
    """Inverse of :func:`jwk`."""
    n = int.from_bytes(b64url_decode(data["n"]), "big")
    e = int.from_bytes(b64url_decode(data["e"]), "big")
    return rsa.RSAPublicNumbers(e, n).public_key()


class SigningKey:
    """An RSA key with its key id: what an issuer signs with and publishes in its JWKS."""

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        self.private_key = private_key
        self.public_key = private_key.public_key()
        self.kid = key_id(self.public_key)

    def __repr__(self) -> str:
        return "SigningKey(kid={!r})".format(self.kid)

    def sign(self, claims: Mapping[str, Any]) -> str:
        """An RS256 JWT of ``claims`` with this key's ``kid``."""
        return sign(claims, self.private_key, kid=self.kid)

    def verify(self, token: str) -> Claims:
        """The claims, if this key signed ``token``."""
        return verify(token, self.public_key)

    def jwks(self) -> Dict[str, Any]:
        """The JWKS document publishing this key."""
        return {"keys": [jwk(self.public_key, self.kid)]}
