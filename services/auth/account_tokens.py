"""Single-use tokens mailed to an account's address: one verifies the address,
one sets a new password.

Only a hash of each token is stored (a database leak yields no usable link),
and a token is good once, within its lifetime, and only while the account's
email is still the address it was mailed to: a link sent to an old address
does nothing once the email has changed.
"""
import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update

from services.auth import exceptions
from services.auth.models import AccountToken, User
from services.shared import clock
from services.shared.unit_of_work import UnitOfWork

VERIFY_EMAIL = "verify_email"
PASSWORD_RESET = "password_reset"

LIFETIMES = {
    # Long enough for someone who registers on Friday evening.
    VERIFY_EMAIL: timedelta(hours=48),
    PASSWORD_RESET: timedelta(minutes=60),
}

# What secrets.token_urlsafe(32) makes (the request schemas check the shape).
TOKEN_PATTERN = r"[A-Za-z0-9_-]{20,100}"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """(raw token for the mail, its hash for the database)."""
    raw = secrets.token_urlsafe(32)
    return raw, hash_token(raw)


def is_usable(purpose: str, created_at: datetime, expires_at: datetime, used_at: datetime | None,
              now: datetime) -> bool:
    """Unused and within its lifetime: the stored expiry, and the lifetime
    in force now, whichever ends first (shortening a lifetime shortens the
    tokens already mailed)."""
    return used_at is None and now < expires_at and now - created_at < LIFETIMES[purpose]


def issue(uow: UnitOfWork, user: User, purpose: str) -> str:
    """A new token of `purpose` for user's current email; returns it raw."""
    raw, token_hash = new_token()
    uow.session.add(AccountToken(token_hash=token_hash, purpose=purpose, user_id=user.id, email=user.email,
                                 expires_at=clock.now() + LIFETIMES[purpose]))
    uow.session.flush()
    return raw


def redeem(uow: UnitOfWork, raw: str, purpose: str) -> User:
    """Spend a token: its active user, whose email it was mailed to. Every
    other failure is the one InvalidAccountToken, so nothing tells an unknown
    token from a used or expired one."""
    token = uow.session.execute(
        select(AccountToken).where(AccountToken.token_hash == hash_token(raw), AccountToken.purpose == purpose)
        .with_for_update()
    ).scalar_one_or_none()
    now = clock.now()
    if token is None or not is_usable(purpose, token.created_at, token.expires_at, token.used_at, now):
        raise exceptions.InvalidAccountToken()
    user = uow.session.get(User, token.user_id)
    if user is None or not user.is_active or user.email != token.email:
        raise exceptions.InvalidAccountToken()
    token.used_at = now
    return user


def spend_all(uow: UnitOfWork, user_id: str, purpose: str) -> None:
    """Spend every unused token of `purpose` of the user (after a reset, the
    other reset links mailed before stop working)."""
    uow.session.execute(
        update(AccountToken)
        .where(AccountToken.user_id == user_id, AccountToken.purpose == purpose, AccountToken.used_at.is_(None))
        .values(used_at=clock.now())
    )
