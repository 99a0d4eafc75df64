"""Access tokens: EdDSA (Ed25519) JWTs signed by auth, verified offline by everyone.

Only auth holds the private key. Every other process needs just the public key,
so a leaked replica of events, messages or realtime cannot mint tokens.
"""
import functools
import os
import time
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ALGORITHM = "EdDSA"
ISSUER = "lifytp-auth"
AUDIENCE = "lifytp"


class InvalidToken(Exception):
    pass


class TokenSigner:
    def __init__(self, private_key_pem, ttl_seconds):
        self._key = serialization.load_pem_private_key(private_key_pem, password=None)
        self.ttl_seconds = ttl_seconds

    def sign(self, user_id, now=None):
        now = int(now if now is not None else time.time())
        claims = {
            "sub": str(user_id),
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)


class TokenVerifier:
    def __init__(self, public_key_pem):
        self._key = serialization.load_pem_public_key(public_key_pem)

    def verify(self, token):
        """Return the user id the token was issued to, or raise InvalidToken."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                # Pinning the one algorithm shuts out `alg: none` and the
                # HS256-with-the-public-key confusion.
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["sub", "exp", "iat", "iss", "aud"]},
            )
            return str(uuid.UUID(claims["sub"]))
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidToken(str(exc)) from exc


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


@functools.cache
def verifier_from_file(public_key_path):
    return TokenVerifier(_read(public_key_path))


def signer_from_file(private_key_path, ttl_seconds):
    return TokenSigner(_read(private_key_path), ttl_seconds)


def new_key_pair():
    """A fresh Ed25519 key pair as (private PEM, public PEM)."""
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def ensure_dev_keys(private_key_path, public_key_path):
    """Create a key pair for local development if there is none yet.

    Deployments mount real keys from a secret; this never overwrites a key.
    """
    if os.path.exists(private_key_path) and os.path.exists(public_key_path):
        return False
    os.makedirs(os.path.dirname(os.path.abspath(private_key_path)), exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(public_key_path)), exist_ok=True)
    private_pem, public_pem = new_key_pair()
    fd = os.open(private_key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    with open(public_key_path, "wb") as handle:
        handle.write(public_pem)
    return True


def main():
    """`python -m services.shared.tokens`: make local development keys if missing."""
    from services.shared.config import load_config

    config = load_config()
    if ensure_dev_keys(config["JWT_PRIVATE_KEY_PATH"], config["JWT_PUBLIC_KEY_PATH"]):
        print("generated a development key pair at", config["JWT_PRIVATE_KEY_PATH"])


if __name__ == "__main__":
    main()
