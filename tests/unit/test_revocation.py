"""The pure rules of token revocation (services.shared.revocation) and the
session a token names (services.shared.tokens)."""
import time
import uuid

import pytest

from services.shared.revocation import Revocation, is_revoked
from services.shared.tokens import TokenSigner, TokenVerifier, VerifiedToken, new_key_pair

USER = str(uuid.uuid4())
SESSION = str(uuid.uuid4())


def token(issued_at=1000, session_id=SESSION, user_id=USER):
    return VerifiedToken(user_id=user_id, session_id=session_id, issued_at=issued_at)


def test_a_token_with_nothing_revoked_stands():
    assert not is_revoked(token(), None, False)


def test_a_revoked_session_refuses_its_tokens_whenever_issued():
    assert is_revoked(token(issued_at=5000), None, True)


def test_a_not_before_refuses_tokens_issued_earlier_only():
    assert is_revoked(token(issued_at=999), 1000, False)
    # A sign-in in the second of a password reset must work.
    assert not is_revoked(token(issued_at=1000), 1000, False)
    assert not is_revoked(token(issued_at=1001), 1000, False)


def test_a_token_issued_before_sessions_were_named_is_refused_by_not_before_alone():
    legacy = token(session_id=None)
    assert not is_revoked(legacy, None, True)
    assert is_revoked(legacy, 1001, False)


def test_a_revocation_covers_only_its_own_account_and_sessions():
    other_session = str(uuid.uuid4())
    revocation = Revocation(user_id=USER, session_ids=(other_session,))
    assert revocation.revokes(token(session_id=other_session))
    assert not revocation.revokes(token(session_id=SESSION))
    assert not revocation.revokes(token(session_id=other_session, user_id=str(uuid.uuid4())))


def test_closing_an_account_revokes_every_token_it_was_issued_before():
    revocation = Revocation(user_id=USER, not_before=1001)
    assert revocation.revokes(token(issued_at=1000))
    assert revocation.revokes(token(issued_at=1000, session_id=None))
    assert not revocation.revokes(token(issued_at=1001))


@pytest.mark.parametrize("session_id", [SESSION, None])
def test_a_token_carries_its_session(session_id):
    private, public = new_key_pair()
    issued_at = int(time.time())
    signed = TokenSigner(private, 900).sign(USER, session_id, now=issued_at)
    verified = TokenVerifier(public).verify_token(signed)
    assert verified == VerifiedToken(user_id=USER, session_id=session_id, issued_at=issued_at)
