"""Access tokens: EdDSA (Ed25519) JWTs signed by auth, verified offline by everyone.

Only auth holds the private key. Every other process needs just the public key,
so a leaked replica of events, messages or realtime cannot mint tokens.

Whatever a token's `exp` says, no verifier accepts one older than the maximum
age (ACCESS_TOKEN_MAX_AGE_SECONDS, `iat` to now) or one whose lifetime (`iat`
to `exp`) is longer than it: a token minted with a leaked key to last a
century is refused, and so is one without `iat` or issued in the future.

A token carries the session it was issued to (`sid`: the refresh-token family
id), so one session can be revoked alone (services.shared.revocation). Tokens
issued before sessions were named have no `sid`: they verify as before, with
session_id None.
"""
import functools
import math
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey, Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "EdDSA"
ISSUER = "lifytp-auth"
AUDIENCE = "lifytp"
# Four times the default access token lifetime (15 minutes): room to raise
# ACCESS_TOKEN_TTL_SECONDS without touching it.
DEFAULT_MAX_AGE_SECONDS = 3600
# How far ahead of a verifier's clock the signer's may run (`iat` in the
# future). `exp` gets no leeway.
IAT_LEEWAY_SECONDS = 30


class InvalidToken(Exception):
    pass


@dataclass(frozen=True)
class VerifiedToken:
    """What a verified access token says: whose it is, of which session, and
    when it was issued (`iat`, seconds since the epoch)."""
    user_id: str
    session_id: str | None
    issued_at: float


def max_token_age(config: dict[str, Any]) -> int:
    """The oldest access token any process accepts, in seconds (the shared config)."""
    return int(config.get("ACCESS_TOKEN_MAX_AGE_SECONDS") or DEFAULT_MAX_AGE_SECONDS)


class TokenSigner:
    def __init__(self, private_key_pem: bytes, ttl_seconds: int,
                 max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS) -> None:
        if not 0 < ttl_seconds <= max_age_seconds:
            # Every verifier would refuse such tokens: better not to start.
            raise ValueError(f"ACCESS_TOKEN_TTL_SECONDS ({ttl_seconds}) must be between 1 and "
                             f"ACCESS_TOKEN_MAX_AGE_SECONDS ({max_age_seconds})")
        key = serialization.load_pem_private_key(private_key_pem, password=None)
        if not isinstance(key, (Ed25519PrivateKey, Ed448PrivateKey)):
            # PyJWT would refuse it at every signature.
            raise ValueError(f"the private key is no EdDSA key ({type(key).__name__})")
        self._key = key
        self.ttl_seconds = ttl_seconds

    def sign(self, user_id: str, session_id: str | None = None, now: float | None = None) -> str:
        now = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        if session_id is not None:
            claims["sid"] = str(session_id)
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)


class TokenVerifier:
    def __init__(self, public_key_pem: bytes, max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS) -> None:
        key = serialization.load_pem_public_key(public_key_pem)
        if not isinstance(key, (Ed25519PublicKey, Ed448PublicKey)):
            # PyJWT would refuse it at every verification: every token would be refused.
            raise ValueError(f"the public key is no EdDSA key ({type(key).__name__})")
        self._key = key
        self.max_age_seconds = max_age_seconds

    def verify(self, token: str, now: float | None = None) -> str:
        """Return the user id the token was issued to, or raise InvalidToken."""
        return self.verify_token(token, now).user_id

    def verify_token(self, token: str, now: float | None = None) -> VerifiedToken:
        """Return what the token says (VerifiedToken), or raise InvalidToken."""
        now = time.time() if now is None else now
        try:
            claims = jwt.decode(
                token,
                self._key,
                # Pinning the one algorithm shuts out `alg: none` and the
                # HS256-with-the-public-key confusion.
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                # `iat` is checked below, with its own leeway; PyJWT's check
                # would share `exp`'s (none).
                options={"require": ["sub", "exp", "iat", "iss", "aud"], "verify_iat": False},
            )
            self._check_age(claims, now)
            session_id = claims.get("sid")
            return VerifiedToken(
                user_id=str(uuid.UUID(claims["sub"])),
                session_id=str(uuid.UUID(session_id)) if session_id is not None else None,
                issued_at=claims["iat"],
            )
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError) as exc:
            raise InvalidToken(str(exc)) from exc

    def _check_age(self, claims: dict[str, Any], now: float) -> None:
        issued_at, expires_at = claims["iat"], claims["exp"]
        # PyJWT has checked that `exp` is a number; `iat` must be a finite one
        # (JSON as Python reads it allows NaN, which every comparison lets by).
        if isinstance(issued_at, bool) or not isinstance(issued_at, (int, float)) or not math.isfinite(issued_at):
            raise InvalidToken("iat is not a number")
        if issued_at > now + IAT_LEEWAY_SECONDS:
            raise InvalidToken("issued in the future (iat)")
        if now - issued_at > self.max_age_seconds:
            raise InvalidToken("older than the maximum age (iat)")
        if expires_at - issued_at > self.max_age_seconds:
            raise InvalidToken("lives longer than the maximum age (exp - iat)")


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


@functools.cache
def verifier_from_file(public_key_path: str, max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS) -> TokenVerifier:
    return TokenVerifier(_read(public_key_path), max_age_seconds)


def signer_from_file(private_key_path: str, ttl_seconds: int,
                     max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS) -> TokenSigner:
    return TokenSigner(_read(private_key_path), ttl_seconds, max_age_seconds)


def new_key_pair() -> tuple[bytes, bytes]:
    """A fresh Ed25519 key pair as (private PEM, public PEM)."""
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return private_pem, public_pem_of(private_pem)


def public_pem_of(private_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(private_pem, password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def ensure_dev_keys(private_key_path: str, public_key_path: str) -> bool:
    """Create a key pair for local development (and compose) if there is none
    yet; True if it wrote anything.

    Never overwrites a private key: with the public one missing (compose keeps
    the two in separate volumes, as only auth may see the private one), the
    public key is derived from the private key again. Deployments on
    Kubernetes mount real keys from Secrets instead.
    """
    if os.path.exists(private_key_path) and os.path.exists(public_key_path):
        return False
    os.makedirs(os.path.dirname(os.path.abspath(private_key_path)), exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(public_key_path)), exist_ok=True)
    if os.path.exists(private_key_path):
        private_pem = _read(private_key_path)
    else:
        private_pem = new_key_pair()[0]
        fd = os.open(private_key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(private_pem)
    with open(public_key_path, "wb") as handle:
        handle.write(public_pem_of(private_pem))
    return True


def main() -> None:
    """`python -m services.shared.tokens`: make local development keys if missing."""
    from services.shared.config import load_config

    config = load_config()
    if ensure_dev_keys(config["JWT_PRIVATE_KEY_PATH"], config["JWT_PUBLIC_KEY_PATH"]):
        print("wrote the key pair: private", config["JWT_PRIVATE_KEY_PATH"],
              "public", config["JWT_PUBLIC_KEY_PATH"])


if __name__ == "__main__":
    main()
