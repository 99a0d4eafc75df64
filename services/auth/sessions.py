"""Sessions: the tokens a sign-in hands out, and the families refresh tokens rotate in.

A sign-in starts a family; each refresh spends its token and issues the next
one of the same family. A spent token presented again means that the client
or a thief holds a copy, and we cannot tell which: the whole family is revoked.

Only a hash of each refresh token is stored, so a database leak yields no
usable token.

A family is a session: its id rides in every access token issued to it (`sid`).
Revoking a session revokes its refresh tokens here and records
`sessions_revoked` in the same transaction, so that once it is committed every
verifier refuses the session's access tokens too (services.shared.revocation).
"""
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Final, Protocol

from sqlalchemy import select, update

from services.auth import exceptions
from services.auth.models import RefreshToken, User
from services.auth.profiles import Profile, profile_of
from services.shared import clock, contracts
from services.shared.unit_of_work import UnitOfWork


def hash_refresh_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class Signer(Protocol):
    """What signs access tokens (services.shared.tokens.TokenSigner)."""
    ttl_seconds: int

    def sign(self, user_id: str, session_id: str | None = None) -> str: ...


class Tokens:
    """Issues access tokens (with the signer it is given) and refresh tokens,
    which live `refresh_ttl_seconds`."""

    def __init__(self, signer: Signer, refresh_ttl_seconds: int) -> None:
        self.signer = signer
        self.refresh_ttl = timedelta(seconds=refresh_ttl_seconds)

    def access_token(self, user_id: str, session_id: str) -> str:
        return self.signer.sign(user_id, session_id)

    @property
    def access_ttl_seconds(self) -> int:
        return self.signer.ttl_seconds

    def new_refresh_token(self) -> tuple[str, str, datetime]:
        raw = secrets.token_urlsafe(32)
        return raw, hash_refresh_token(raw), clock.now() + self.refresh_ttl

    def refresh_token_too_old(self, created_at: datetime | None, now: datetime) -> bool:
        """Whether a refresh token has outlived the lifetime in force now,
        whatever its stored expiry says: lowering REFRESH_TOKEN_TTL_SECONDS
        shortens the tokens already issued too."""
        return created_at is None or now - created_at >= self.refresh_ttl


@dataclass(frozen=True)
class SignedIn:
    """What a sign-in or a refresh gives the client."""
    user: Profile
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


# What refresh() answers when a spent token came back: the family is revoked
# in the caller's unit of work, which must commit that before refusing the
# client (RefreshTokenReused), or the thief's copy would keep working.
class Revoked(Enum):
    FAMILY = "family revoked"


FAMILY_REVOKED: Final = Revoked.FAMILY


def sign_in(uow: UnitOfWork, tokens: Tokens, user: User, family_id: str | None = None) -> SignedIn:
    """Issue an access token and a refresh token (of a new family unless given)."""
    raw, token_hash, expires_at = tokens.new_refresh_token()
    family_id = family_id or str(uuid.uuid4())
    uow.session.add(RefreshToken(
        token_hash=token_hash, user_id=user.id, expires_at=expires_at, family_id=family_id,
    ))
    uow.session.flush()
    return SignedIn(
        user=profile_of(uow.session, user),
        access_token=tokens.access_token(user.id, family_id),
        refresh_token=raw,
        expires_in=tokens.access_ttl_seconds,
    )


def refresh(uow: UnitOfWork, tokens: Tokens, raw_token: str) -> SignedIn | Revoked:
    """Rotate a refresh token: SignedIn, or FAMILY_REVOKED for a spent one."""
    current = uow.session.execute(
        select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(raw_token)).with_for_update()
    ).scalar_one_or_none()
    now = clock.now()
    if current is None or current.revoked_at is not None or current.expires_at <= now \
            or tokens.refresh_token_too_old(current.created_at, now):
        raise exceptions.InvalidRefreshToken()
    if current.used_at is not None:
        revoke_family(uow, current.family_id)
        return FAMILY_REVOKED
    user = uow.session.get(User, current.user_id)
    if user is None or not user.is_active:
        raise exceptions.InvalidRefreshToken()
    current.used_at = now
    return sign_in(uow, tokens, user, family_id=current.family_id)


def sign_out(uow: UnitOfWork, raw_token: str) -> None:
    """End the session (the family) a refresh token belongs to; an unknown token ends nothing."""
    current = uow.session.execute(
        select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(raw_token))
    ).scalar_one_or_none()
    if current is not None:
        revoke_family(uow, current.family_id)


def revoke_family(uow: UnitOfWork, family_id: str) -> None:
    """End one session: its refresh tokens and its access tokens."""
    user_ids = uow.session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=clock.now())
        .returning(RefreshToken.user_id)
    ).scalars().all()
    if user_ids:
        uow.record(contracts.SessionsRevoked(user_id=user_ids[0], session_ids=[family_id]))


def revoke_every_session(uow: UnitOfWork, user_id: str, *, account_closed: bool = False) -> None:
    """End every session of the account, access tokens included: each one
    issued before now is refused. For a closed account (account_closed) the
    refusal reaches to the end of this second too, since it gets no new ones."""
    now = clock.now()
    not_before = int(now.timestamp()) + (1 if account_closed else 0)
    uow.session.execute(update(User).where(User.id == user_id).values(
        tokens_not_before=datetime.fromtimestamp(not_before, UTC)))
    uow.record(contracts.SessionsRevoked(
        user_id=user_id, session_ids=_revoke_refresh_tokens(uow, user_id, now), not_before=not_before))


def revoke_other_sessions(uow: UnitOfWork, user_id: str, keep_session_id: str | None) -> None:
    """End every session of the account but keep_session_id (the caller's).
    Without one (a token issued before sessions were named), every session's
    refresh tokens are revoked, and the access tokens that name a session."""
    session_ids = _revoke_refresh_tokens(uow, user_id, clock.now(), keep_session_id)
    if session_ids:
        uow.record(contracts.SessionsRevoked(user_id=user_id, session_ids=session_ids))


def _revoke_refresh_tokens(uow: UnitOfWork, user_id: str, now: datetime,
                           keep_session_id: str | None = None) -> list[str]:
    """Revoke the account's live refresh tokens (but keep_session_id's); the
    sessions (family ids) they were of."""
    query = update(RefreshToken).where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
    if keep_session_id is not None:
        query = query.where(RefreshToken.family_id != keep_session_id)
    family_ids = uow.session.execute(
        query.values(revoked_at=now).returning(RefreshToken.family_id)
    ).scalars().all()
    return sorted(set(family_ids))


def recent_revocations(uow: UnitOfWork, since: datetime) -> list[contracts.SessionsRevoked]:
    """Every revocation made since `since`, one per account, as PostgreSQL
    knows them: to write the revocation list again after Redis lost it."""
    by_user: dict[str, tuple[list[str], int | None]] = {}
    for user_id, family_id in uow.session.execute(
        select(RefreshToken.user_id, RefreshToken.family_id).where(RefreshToken.revoked_at >= since).distinct()
    ):
        by_user.setdefault(user_id, ([], None))[0].append(family_id)
    for user_id, not_before in uow.session.execute(
        select(User.id, User.tokens_not_before).where(User.tokens_not_before >= since)
    ):
        by_user[user_id] = (by_user.get(user_id, ([], None))[0], int(not_before.timestamp()))
    return [contracts.SessionsRevoked(user_id=user_id, session_ids=sorted(session_ids), not_before=not_before)
            for user_id, (session_ids, not_before) in by_user.items()]
