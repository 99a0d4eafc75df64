"""Access tokens have a maximum accepted age whatever their `exp` says; the
key pair for compose is made, or completed, without replacing a private key."""
import os
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from services.shared.tokens import (
    AUDIENCE,
    IAT_LEEWAY_SECONDS,
    ISSUER,
    InvalidToken,
    TokenSigner,
    TokenVerifier,
    ensure_dev_keys,
    max_token_age,
    new_key_pair,
)

USER = "5b1e4f4e-8a8a-4b7b-9d5c-3a2b1c0d9e8f"
HOUR = 3600
CENTURY = 100 * 365 * 24 * HOUR


@pytest.fixture(scope="module")
def pair():
    return new_key_pair()


def signed(private_pem, **claims):
    """A token signed with the real key (a leaked one) carrying exactly `claims`."""
    body = {"sub": USER, "iss": ISSUER, "aud": AUDIENCE, **claims}
    body = {key: value for key, value in body.items() if value is not None}
    return jwt.encode(body, serialization.load_pem_private_key(private_pem, None), algorithm="EdDSA")


def test_a_token_as_auth_issues_it_is_accepted(pair):
    private, public = pair
    assert TokenVerifier(public, HOUR).verify(TokenSigner(private, 900, HOUR).sign(USER)) == USER


@pytest.mark.parametrize("claims", [
    {"iat": "now", "exp": "now+century"},            # minted today to last a century
    {"iat": "now-century", "exp": "now+century"},    # minted long ago, never expiring
    {"iat": "now-2h", "exp": "now+60"},              # older than the maximum age
    {"iat": None, "exp": "now+60"},                  # no iat at all
    {"iat": "now+5m", "exp": "now+10m"},             # issued in the future
    {"iat": "text", "exp": "now+60"},
    {"iat": True, "exp": "now+60"},
    {"iat": "nan", "exp": "now+60"},                 # NaN passes every comparison
    {"iat": "huge", "exp": "now+60"},
])
def test_tokens_outside_the_maximum_age_are_refused_even_with_the_real_key(pair, claims):
    private, public = pair
    now = time.time()
    values = {"now": int(now), "now+century": int(now) + CENTURY, "now-century": int(now) - CENTURY,
              "now-2h": int(now) - 2 * HOUR, "now+60": int(now) + 60, "now+5m": int(now) + 300,
              "now+10m": int(now) + 600, "text": "yesterday", "nan": float("nan"), "huge": 10 ** 400, None: None}
    token = signed(private, **{key: values.get(value, value) for key, value in claims.items()})
    with pytest.raises(InvalidToken):
        TokenVerifier(public, HOUR).verify(token, now=now)


def test_a_signer_clock_slightly_ahead_is_tolerated_but_exp_gets_no_leeway(pair):
    private, public = pair
    verifier = TokenVerifier(public, HOUR)
    now = int(time.time())
    assert verifier.verify(signed(private, iat=now + IAT_LEEWAY_SECONDS - 1, exp=now + 600), now=now) == USER
    with pytest.raises(InvalidToken):
        verifier.verify(signed(private, iat=now - 600, exp=now - 1), now=now)


def test_the_maximum_age_is_the_shared_configs():
    assert max_token_age({"ACCESS_TOKEN_MAX_AGE_SECONDS": 7200}) == 7200
    assert max_token_age({}) == HOUR


def test_auth_will_not_issue_tokens_every_verifier_would_refuse(pair):
    private, _ = pair
    with pytest.raises(ValueError, match="ACCESS_TOKEN_MAX_AGE_SECONDS"):
        TokenSigner(private, 2 * HOUR, HOUR)


def test_dev_keys_are_made_once_and_a_lost_public_key_is_derived_not_replaced(tmp_path):
    private_path = tmp_path / "signing" / "jwt-private.pem"
    public_path = tmp_path / "public" / "jwt-public.pem"
    assert ensure_dev_keys(str(private_path), str(public_path)) is True
    private, public = private_path.read_bytes(), public_path.read_bytes()
    assert oct(os.stat(private_path).st_mode & 0o777) == "0o600"
    assert ensure_dev_keys(str(private_path), str(public_path)) is False

    public_path.unlink()  # e.g. the public volume was removed
    assert ensure_dev_keys(str(private_path), str(public_path)) is True
    assert private_path.read_bytes() == private and public_path.read_bytes() == public
    token = TokenSigner(private, 900).sign(str(uuid.uuid4()))
    TokenVerifier(public_path.read_bytes()).verify(token)
