"""What the events service knows about people: user summaries from auth (one
batched call per response), and local replicas of the follow graph and of
blocks and mutes.

The replica answers "whom does X follow" and "does X follow Y" inside SQL
queries (visibility, feed) without an RPC per request. It only ever holds
follows auth has: a request to follow a private account is no follow until
its owner approves it, and auth sends user_followed only then. A user's whole list is
copied from auth the first time it is needed and again after
FOLLOW_RESYNC_AFTER; in between, auth's user_followed / user_unfollowed events
keep it current.

The replica of blocks and mutes (services.shared.safety) is kept by auth's
user_blocked / user_unblocked / user_muted / user_unmuted events alone: the
visibility conditions below read it in the same SQL as everything else.
"""
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, delete, exists, func, literal, select, update
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import Exists

from services.events.models import Blocks, DeletedUser, Event, Follow, FollowSync, Mutes, Participant
from services.shared import clock, contracts, safety
from services.shared.ids import valid_uuids
from services.shared.unit_of_work import UnitOfWork

FOLLOW_RESYNC_AFTER = timedelta(hours=24)
MAX_USERS_PER_CALL = 1000

# A user as auth's get_users describes them ({"id", "username", ...}).
UserSummary = dict[str, Any]


class Auth(Protocol):
    """The RPC methods of auth the events service calls (answers as auth sent them)."""

    def get_users(self, user_ids: list[str]) -> list[UserSummary]: ...

    def get_following_ids(self, user_id: str) -> object: ...


def users_by_id(auth: Auth, user_ids: Iterable[str | None]) -> dict[str, UserSummary]:
    """{id: summary} for every active user among user_ids, in one RPC."""
    ids = list(dict.fromkeys(user_id for user_id in user_ids if user_id))[:MAX_USERS_PER_CALL]
    if not ids:
        return {}
    return {user["id"]: user for user in auth.get_users(ids)}


def ensure_follows(session: Session, auth: Auth, user_id: str) -> None:
    """Make sure the replica holds user_id's follow list (copy it if stale),
    in the caller's transaction. If that transaction fails, the copy goes
    with it and is made again next time: nothing depends on it surviving."""
    synced_at = session.scalar(select(FollowSync.synced_at).where(FollowSync.user_id == user_id))
    if synced_at is not None and clock.now() - synced_at < FOLLOW_RESYNC_AFTER:
        return
    followee_ids = valid_uuids(auth.get_following_ids(user_id))
    # Two first requests of one user at once would otherwise interleave their
    # delete-and-copy and could deadlock.
    session.execute(select(func.pg_advisory_xact_lock(func.hashtext("follows:" + user_id))))
    session.execute(delete(Follow).where(Follow.follower_id == user_id))
    if followee_ids:
        session.execute(
            insert(Follow)
            .values([{"follower_id": user_id, "followee_id": followee} for followee in followee_ids])
            .on_conflict_do_nothing()
        )
    session.execute(
        insert(FollowSync).values(user_id=user_id)
        .on_conflict_do_update(index_elements=[FollowSync.user_id], set_={"synced_at": clock.now()})
    )


def follow(uow: UnitOfWork, follower_id: str, followee_id: str) -> None:
    """Apply auth's user_followed: unless either account is gone."""
    deleted = select(DeletedUser.user_id).where(DeletedUser.user_id.in_([follower_id, followee_id]))
    uow.session.execute(
        insert(Follow).from_select(
            ["follower_id", "followee_id"],
            select(literal(follower_id, UUID(as_uuid=False)), literal(followee_id, UUID(as_uuid=False)))
            .where(~deleted.exists()),
        ).on_conflict_do_nothing()
    )


def unfollow(uow: UnitOfWork, follower_id: str, followee_id: str) -> None:
    """Apply auth's user_unfollowed (they unfollowed, or the followee removed
    them): the edge goes, and so do the follower's seats at the followee's
    followers-only events that have not ended. A seat there was taken as a
    follower; kept, it would keep the event visible (participants see what
    they joined) to someone the organizer no longer lets see it. Seats at
    public events, and at events that are over, stay."""
    session = uow.session
    session.execute(delete(Follow).where(Follow.follower_id == follower_id, Follow.followee_id == followee_id))
    # Locked as a join locks them, so participants_count stays exact.
    withdrawn_from = session.execute(
        select(Event.id).where(
            Event.organizer_id == followee_id, Event.visibility == "followers", Event.series_ends_at > clock.now(),
            exists().where(Participant.event_id == Event.id, Participant.user_id == follower_id),
        ).order_by(Event.id).with_for_update()
    ).scalars().all()
    if not withdrawn_from:
        return
    session.execute(delete(Participant).where(
        Participant.user_id == follower_id, Participant.event_id.in_(withdrawn_from)))
    session.execute(
        update(Event).where(Event.id.in_(withdrawn_from)).values(participants_count=Event.participants_count - 1)
    )


# Blocks and mutes ----------------------------------------------------------------

def either_blocks(viewer_id: str, other: safety.UserRef) -> ColumnElement[bool]:
    """SQL condition: the viewer blocks `other` (a user id column) or is blocked by them."""
    return safety.either_blocks(Blocks, viewer_id, other)


def mutes(viewer_id: str, other: safety.UserRef) -> ColumnElement[bool]:
    """SQL condition: the viewer mutes `other` (a user id column)."""
    return safety.holds(Mutes, viewer_id, other)


def change_block(uow: UnitOfWork, change: contracts.RelationChanged, active: bool) -> None:
    """Apply auth's user_blocked (active) or user_unblocked: unless either account is gone."""
    safety.apply_change(uow.session, Blocks, change, active, unless=_either_deleted(change))


def change_mute(uow: UnitOfWork, change: contracts.RelationChanged, active: bool) -> None:
    """Apply auth's user_muted (active) or user_unmuted: unless either account is gone."""
    safety.apply_change(uow.session, Mutes, change, active, unless=_either_deleted(change))


def _either_deleted(change: contracts.RelationChanged) -> Exists:
    return select(DeletedUser.user_id).where(DeletedUser.user_id.in_([change.user_id, change.target_id])).exists()


def forget_relations(uow: UnitOfWork, user_id: str) -> None:
    """A deleted account's blocks and mutes, both ways, go with it."""
    for table in (Blocks, Mutes):
        safety.forget(uow.session, table, user_id)
