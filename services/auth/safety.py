"""Blocks and mutes: auth owns who blocks or mutes whom.

A block works both ways: neither user sees the other's profile or finds them
in a list, and neither can follow the other (services.auth.accounts asks
`refuse_if_blocked`). Blocking removes the follows between the two. A mute
is one-way and silent: the muted user is not told, and nothing of auth's
answers changes; the events and messages services leave the muted user's
items out of the muter's feed and notifications.

Every change is recorded as a domain event (user_blocked, user_unblocked,
user_muted, user_unmuted) numbered from one sequence, so the replicas of the
services that enforce blocks and mutes (services.shared.safety) apply them in
order whatever order they arrive in. Nothing changes, and nothing is
recorded, when a call asks for what already is.
"""
from datetime import datetime

from sqlalchemy import ColumnElement, delete, exists, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import InstrumentedAttribute, Session

from services.auth import exceptions
from services.auth.follows import remove_follow
from services.auth.models import RELATION_VERSIONS, Block, Mute, User
from services.auth.privacy import cancel_request
from services.auth.profiles import Profile, active_user, newest_first
from services.shared import contracts
from services.shared.safety import Blocked
from services.shared.unit_of_work import UnitOfWork, table_of

BLOCKS, MUTES = "blocks", "mutes"
# What each kind of relation is stored in: (model, whose, whom).
_RELATIONS = {
    BLOCKS: (Block, Block.blocker_id, Block.blocked_id),
    MUTES: (Mute, Mute.muter_id, Mute.muted_id),
}


# Checks other parts of auth ask ------------------------------------------------------

def either_blocks(viewer_id: str, other: ColumnElement[str] | InstrumentedAttribute[str] | str) -> ColumnElement[bool]:
    """SQL condition: the viewer blocks `other` or `other` blocks the viewer
    (one primary-key probe and one index probe)."""
    return or_(
        exists().where(Block.blocker_id == viewer_id, Block.blocked_id == other),
        exists().where(Block.blocker_id == other, Block.blocked_id == viewer_id),
    )


def blocked_between(session: Session, user_id: str, other_id: str) -> bool:
    return bool(session.scalar(select(either_blocks(user_id, other_id))))


def refuse_if_blocked(session: Session, user_id: str, other_id: str) -> None:
    """Blocked (403 BLOCKED) if either of the two blocks the other."""
    if blocked_between(session, user_id, other_id):
        raise Blocked()


def visible_user(session: Session, viewer_id: str | None, user_id: str) -> User:
    """The active user, unless a block stands between them and the viewer:
    to each other they do not exist (UserNotFound)."""
    user = active_user(session, user_id)
    if viewer_id and viewer_id != user_id and blocked_between(session, viewer_id, user_id):
        raise exceptions.UserNotFound()
    return user


# Blocking and muting ---------------------------------------------------------------

def block(uow: UnitOfWork, user_id: str, target_id: str) -> None:
    """Block target_id, removing the follows between the two (each removal
    recorded as user_unfollowed, so the follow replicas forget it too)."""
    if user_id == target_id:
        raise exceptions.CannotBlockYourself(details={"id": ["You cannot block yourself."]})
    active_user(uow.session, target_id)
    if not _add(uow, BLOCKS, user_id, target_id):
        return
    for follower_id, followee_id in ((user_id, target_id), (target_id, user_id)):
        remove_follow(uow, follower_id, followee_id)
        # A pending request would turn into a follow on approval.
        cancel_request(uow, follower_id, followee_id)
    uow.record(contracts.UserBlocked(user_id=user_id, target_id=target_id, version=_next_version(uow.session)))


def unblock(uow: UnitOfWork, user_id: str, target_id: str) -> None:
    """Stop blocking target_id. The follows the block removed stay removed."""
    if _remove(uow, BLOCKS, user_id, target_id):
        uow.record(contracts.UserUnblocked(user_id=user_id, target_id=target_id, version=_next_version(uow.session)))


def mute(uow: UnitOfWork, user_id: str, target_id: str) -> None:
    if user_id == target_id:
        raise exceptions.CannotMuteYourself(details={"id": ["You cannot mute yourself."]})
    active_user(uow.session, target_id)
    if _add(uow, MUTES, user_id, target_id):
        uow.record(contracts.UserMuted(user_id=user_id, target_id=target_id, version=_next_version(uow.session)))


def unmute(uow: UnitOfWork, user_id: str, target_id: str) -> None:
    if _remove(uow, MUTES, user_id, target_id):
        uow.record(contracts.UserUnmuted(user_id=user_id, target_id=target_id, version=_next_version(uow.session)))


def _add(uow: UnitOfWork, kind: str, user_id: str, target_id: str) -> bool:
    model, whose, whom = _RELATIONS[kind]
    return uow.session.execute(
        insert(model).values({whose: user_id, whom: target_id}).on_conflict_do_nothing().returning(whose)
    ).first() is not None


def _remove(uow: UnitOfWork, kind: str, user_id: str, target_id: str) -> bool:
    model, whose, whom = _RELATIONS[kind]
    return uow.session.execute(
        table_of(model).delete().where(whose == user_id, whom == target_id).returning(whose)
    ).first() is not None


def _next_version(session: Session) -> int:
    # Taken after the row was written: a concurrent change of the same pair
    # waits on that row until this transaction ends, and so takes a higher
    # number, in the order the two commit.
    return int(session.scalar(RELATION_VERSIONS.next_value()))


# Lists -------------------------------------------------------------------------------

def relation_page(uow: UnitOfWork, kind: str, user_id: str, limit: int,
                  after: tuple[datetime, str] | None = None) -> list[tuple[Profile, datetime]]:
    """Up to limit + 1 (profile, since) of the users user_id blocks (BLOCKS)
    or mutes (MUTES), newest first, after the (since, user id) given."""
    model, whose, whom = _RELATIONS[kind]
    since = table_of(model).c.created_at
    query = select(User, since).join(model, whom == User.id).where(whose == user_id, User.is_active)
    return newest_first(uow.session, user_id, query, since, limit, after)


def forget_user(session: Session, user_id: str) -> None:
    """Remove the blocks and mutes of a closed account, both ways (the
    replicas forget theirs on user_deleted)."""
    for model, whose, whom in _RELATIONS.values():
        session.execute(delete(model).where(or_(whose == user_id, whom == user_id)))

