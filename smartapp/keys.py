"""The app's own signing keys for `private_key_jwt` client authentication.

Private keys come from `SMART_JWKS` (a private JWKS as JSON) or `SMART_JWKS_FILE` (a path). In
DEBUG only, a missing file is generated (one RS384 and one ES384 key) so the demo works out of
the box; production keys are made with `manage.py generate_jwks PATH`.

Reference: https://build.fhir.org/ig/HL7/smart-app-launch/client-confidential-asymmetric.html
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

logger = logging.getLogger(__name__)

# The SMART IG requires apps to support both; RS384 first because more servers accept it.
SUPPORTED_ALGS = ("RS384", "ES384")
_PUBLIC_MEMBERS = {"RSA": ("kty", "n", "e"), "EC": ("kty", "crv", "x", "y")}


class KeyConfigurationError(Exception):
    """The app's signing keys are missing or unusable."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private_jwk: dict[str, Any] = field(repr=False)  # never in a log or traceback

    def public_jwk(self) -> dict[str, Any]:
        members = _PUBLIC_MEMBERS[self.private_jwk["kty"]]
        return {
            **{name: self.private_jwk[name] for name in members},
            "kid": self.kid,
            "alg": self.alg,
            "use": "sig",
            "key_ops": ["verify"],
        }

    def sign(self, claims: dict[str, Any]) -> str:
        key = jwt.PyJWK(self.private_jwk, algorithm=self.alg).key
        return jwt.encode(claims, key, algorithm=self.alg, headers={"kid": self.kid, "typ": "JWT"})


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint, used as a stable `kid`."""
    members = _PUBLIC_MEMBERS[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in sorted(members)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def generate_private_jwks() -> dict[str, Any]:
    """A fresh private JWKS with one RS384 (RSA 2048) and one ES384 (P-384) key."""
    keys = []
    for alg, private_key in (
        ("RS384", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ES384", ec.generate_private_key(ec.SECP384R1())),
    ):
        algorithm = RSAAlgorithm if alg.startswith("RS") else ECAlgorithm
        jwk = algorithm.to_jwk(private_key, as_dict=True)
        jwk.update({"alg": alg, "use": "sig", "kid": thumbprint(jwk)})
        keys.append(jwk)
    return {"keys": keys}


def write_private_jwks(path: Path, jwks: dict[str, Any]) -> None:
    """Write a private JWKS readable by the owner only (0600), creating the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(jwks, handle, indent=2)
    os.chmod(path, 0o600)


def _parse(document: str, source: str) -> tuple[SigningKey, ...]:
    try:
        data = json.loads(document)
        entries = data["keys"]
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyConfigurationError(f"{source} is not a JWKS document") from exc
    keys = []
    for entry in entries:
        alg = entry.get("alg") or {"RSA": "RS384", "EC": "ES384"}.get(entry.get("kty"), "")
        if alg not in SUPPORTED_ALGS:
            logger.warning("ignoring a signing key with unsupported alg %r in %s", alg, source)
            continue
        try:
            jwt.PyJWK(entry, algorithm=alg)  # proves the key parses for its algorithm
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, KeyError) as exc:
            raise KeyConfigurationError(f"{source} holds an unusable {alg} key") from exc
        if "d" not in entry:
            raise KeyConfigurationError(f"{source} holds a public key; private keys are needed")
        keys.append(SigningKey(kid=entry.get("kid") or thumbprint(entry), alg=alg, private_jwk=entry))
    return tuple(keys)


@lru_cache(maxsize=4)
def _load(jwks_json: str, jwks_file: str, debug: bool) -> tuple[SigningKey, ...]:
    if jwks_json:
        return _parse(jwks_json, "SMART_JWKS")
    if not jwks_file:
        return ()
    path = Path(jwks_file)
    if not path.exists():
        if not debug:
            raise KeyConfigurationError(f"SMART_JWKS_FILE {path} does not exist")
        logger.warning("generating development signing keys at %s", path)
        write_private_jwks(path, generate_private_jwks())
    try:
        document = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:  # unreadable (permissions, a directory, binary)
        raise KeyConfigurationError(f"SMART_JWKS_FILE {path} cannot be read: {type(exc).__name__}") from exc
    return _parse(document, "SMART_JWKS_FILE")


def signing_keys() -> tuple[SigningKey, ...]:
    """All configured signing keys (may be empty when no private_key_jwt EHR is used)."""
    return _load(settings.SMART_JWKS, settings.SMART_JWKS_FILE, settings.DEBUG)


def signing_key(allowed_algs: list[str] | None = None) -> SigningKey:
    """The key to sign a client assertion with, honouring the server's advertised algorithms."""
    keys = signing_keys()
    if not keys:
        raise KeyConfigurationError("no signing keys configured (set SMART_JWKS or SMART_JWKS_FILE)")
    for alg in SUPPORTED_ALGS:
        if allowed_algs and alg not in allowed_algs:
            continue
        for key in keys:
            if key.alg == alg:
                return key
    raise KeyConfigurationError(
        "none of the app's signing keys uses an algorithm the EHR accepts "
        f"(EHR: {', '.join(allowed_algs or [])}; app: {', '.join(k.alg for k in keys)})"
    )


def public_jwks() -> dict[str, Any]:
    """The public half of every signing key, for `/.well-known/jwks.json`."""
    return {"keys": [key.public_jwk() for key in signing_keys()]}
