"""Private accounts and who may reach a user: follow requests, removing a
follower, and who may add the user to a group conversation.

A private account (`is_private`) approves each follower: following it makes
a follow request, and only an approved request becomes a follow (with the
UserFollowed event every replica of the graph learns it from). Until then
the requester follows nothing, so nothing followers-only shows to them.
"""
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from services.auth import exceptions
from services.auth.follows import add_follow, remove_follow
from services.auth.models import Follow, FollowRequest, User
from services.auth.profiles import Profile, active_user, newest_first
from services.shared import contracts
from services.shared.unit_of_work import UnitOfWork, table_of

# Who may add a user to a group conversation: anyone, only people the user
# follows, or nobody.
GROUP_INVITES = ("everyone", "following", "nobody")
# One check of group invites answers at most this many ids (a group's size is
# smaller: services.messages.conversations.MAX_MEMBERS).
MAX_INVITEES = 1000


def is_private_now(uow: UnitOfWork, user_id: str) -> bool:
    """Whether the account is private, read under a share lock on its row: a
    concurrent switch to public (which approves the pending requests) either
    committed before this read, or waits until this transaction's request is
    committed and approves it too. Either way no request is left pending on
    a public account."""
    return bool(uow.session.scalar(
        select(User.is_private).where(User.id == user_id).with_for_update(read=True)
    ))


# Follow requests ------------------------------------------------------------------

def request_follow(uow: UnitOfWork, requester_id: str, owner_id: str) -> None:
    """Ask to follow a private account; asking again changes nothing."""
    created = uow.session.execute(
        insert(FollowRequest).values(requester_id=requester_id, owner_id=owner_id)
        .on_conflict_do_nothing().returning(FollowRequest.requester_id)
    ).first()
    if created:
        uow.record(contracts.FollowRequested(requester_id=requester_id, owner_id=owner_id))


def cancel_request(uow: UnitOfWork, requester_id: str, owner_id: str) -> bool:
    """Withdraw (or, for the owner, decline) a pending request; False if there was none."""
    removed = uow.session.execute(
        table_of(FollowRequest).delete()
        .where(FollowRequest.requester_id == requester_id, FollowRequest.owner_id == owner_id)
        .returning(FollowRequest.requester_id)
    ).first()
    return removed is not None


def approve(uow: UnitOfWork, owner_id: str, requester_id: str) -> None:
    """The requester now follows the owner (FollowRequestNotFound if they had not asked)."""
    _take_request(uow, owner_id, requester_id)
    add_follow(uow, requester_id, owner_id, via_request=True)


def decline(uow: UnitOfWork, owner_id: str, requester_id: str) -> None:
    """Refuse a request (FollowRequestNotFound if there is none). The requester
    is not told: their view of the profile shows follow_status "none" again."""
    _take_request(uow, owner_id, requester_id)


def _take_request(uow: UnitOfWork, owner_id: str, requester_id: str) -> None:
    """Remove the pending request, or raise FollowRequestNotFound. Deleting
    first makes two answers at once to one request settle it once."""
    # A closed account's request is gone as far as anyone can see (the error
    # rolls the deletion back: nothing changes).
    if not cancel_request(uow, requester_id, owner_id) or not uow.session.scalar(
            select(User.is_active).where(User.id == requester_id)):
        raise exceptions.FollowRequestNotFound()


def approve_all(uow: UnitOfWork, owner_id: str) -> int:
    """Approve every pending request (an account turning public); returns how many."""
    requesters = uow.session.execute(
        table_of(FollowRequest).delete().where(FollowRequest.owner_id == owner_id)
        .returning(FollowRequest.requester_id)
    ).scalars().all()
    active = set(uow.session.execute(
        select(User.id).where(User.id.in_(requesters), User.is_active)
    ).scalars()) if requesters else set()
    for requester_id in requesters:
        if requester_id in active:
            add_follow(uow, requester_id, owner_id, via_request=True)
    return len(active)


def request_page(uow: UnitOfWork, owner_id: str, limit: int,
                 after: tuple[datetime, str] | None = None) -> list[tuple[Profile, datetime]]:
    """Up to limit + 1 (profile, asked_at) of the users asking to follow
    owner_id, newest first, after the (asked_at, user id) given."""
    active_user(uow.session, owner_id)
    query = (
        select(User, FollowRequest.created_at)
        .join(FollowRequest, FollowRequest.requester_id == User.id)
        .where(FollowRequest.owner_id == owner_id, User.is_active)
    )
    return newest_first(uow.session, owner_id, query, FollowRequest.created_at, limit, after)


# Followers ------------------------------------------------------------------------

def remove_follower(uow: UnitOfWork, owner_id: str, follower_id: str) -> None:
    """follower_id no longer follows owner_id (nor asks to); idempotent. The
    UserUnfollowed it records makes the replicas drop the edge, and events
    withdraws them from the owner's followers-only events."""
    if follower_id == owner_id:
        raise exceptions.CannotRemoveYourself(details={"id": ["You are not your own follower."]})
    remove_follow(uow, follower_id, owner_id)
    cancel_request(uow, follower_id, owner_id)


# Group invites --------------------------------------------------------------------

def group_invite_refusals(uow: UnitOfWork, inviter_id: str, user_ids: Iterable[str]) -> list[str]:
    """The ids among user_ids whose group_invites setting refuses being added
    to a group by inviter_id ("nobody"; "following" unless they follow the
    inviter), in the order given. Unknown or closed accounts are not refusals:
    whoever asks checks those apart."""
    ids = [user_id for user_id in dict.fromkeys(user_ids) if user_id != inviter_id][:MAX_INVITEES]
    if not ids:
        return []
    settings = dict(uow.session.execute(
        select(User.id, User.group_invites).where(User.id.in_(ids), User.is_active, User.group_invites != "everyone")
    ).tuples().all())
    selective = [user_id for user_id, setting in settings.items() if setting == "following"]
    following_inviter = set(uow.session.execute(
        select(Follow.follower_id).where(Follow.follower_id.in_(selective), Follow.followee_id == inviter_id)
    ).scalars()) if selective else set()
    return [user_id for user_id in ids if user_id in settings and user_id not in following_inviter]
