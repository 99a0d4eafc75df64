"""Users as the API shows them: the account with its follow counts, and
whether the viewer follows it (or asked to)."""
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, literal, select, tuple_
from sqlalchemy.orm import Session

from services.auth import exceptions
from services.auth.models import Follow, FollowRequest, User

# Where the viewer stands with a user (follow_status).
STATUS_NONE, STATUS_REQUESTED, STATUS_FOLLOWING = "none", "requested", "following"
FOLLOW_STATUSES = (STATUS_NONE, STATUS_REQUESTED, STATUS_FOLLOWING)


@dataclass(frozen=True)
class Profile:
    """A user with their follow counts. It reads as the user too
    (`profile.username`), so one answer schema writes both."""
    user: User
    followers_count: int
    following_count: int
    follow_status: str = STATUS_NONE

    @property
    def is_following(self) -> bool:
        return self.follow_status == STATUS_FOLLOWING

    def __getattr__(self, name: str) -> Any:
        # Only reached for what the dataclass itself lacks: the user's columns.
        return getattr(self.user, name)


def active_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        raise exceptions.UserNotFound()
    return user


def profile_of(session: Session, user: User, viewer_id: str | None = None) -> Profile:
    (profile,) = profiles_of(session, [user], viewer_id)
    return profile


def profiles_of(session: Session, users: Sequence[User], viewer_id: str | None = None) -> list[Profile]:
    """The profiles of users, in their order, as viewer_id (None: nobody) sees them."""
    ids = [user.id for user in users]
    counts = _follow_counts(session, ids)
    followed = _followed_among(session, viewer_id, ids)
    requested = _requested_among(session, viewer_id, ids)
    return [Profile(user, *counts[user.id], follow_status=_status(user.id, followed, requested)) for user in users]


def newest_first(session: Session, viewer_id: str | None, query: Select[Any], since: Any, limit: int,
                 after: tuple[datetime, str] | None = None) -> list[tuple[Profile, datetime]]:
    """A page of a list of users: query selects (User, since) with the list's
    joins and filters; up to limit + 1 (profile, since), newest first, after
    the (since, user id) given, as viewer_id sees them."""
    query = query.order_by(since.desc(), User.id.desc()).limit(limit + 1)
    if after:
        query = query.where(tuple_(since, User.id) < tuple_(*map(literal, after)))
    rows = session.execute(query).all()
    profiles = profiles_of(session, [user for user, _ in rows], viewer_id)
    return [(profile, when) for profile, (_, when) in zip(profiles, rows, strict=True)]


def _status(user_id: str, followed: set[str], requested: set[str]) -> str:
    if user_id in followed:
        return STATUS_FOLLOWING
    return STATUS_REQUESTED if user_id in requested else STATUS_NONE


def _follow_counts(session: Session, user_ids: list[str]) -> dict[str, tuple[int, int]]:
    """{user_id: (followers, following)}."""
    counts = {user_id: [0, 0] for user_id in user_ids}
    if not user_ids:
        return {}
    for user_id, total in session.execute(
        select(Follow.followee_id, func.count()).where(Follow.followee_id.in_(user_ids)).group_by(Follow.followee_id)
    ):
        counts[user_id][0] = total
    for user_id, total in session.execute(
        select(Follow.follower_id, func.count()).where(Follow.follower_id.in_(user_ids)).group_by(Follow.follower_id)
    ):
        counts[user_id][1] = total
    return {user_id: (followers, following) for user_id, (followers, following) in counts.items()}


def _followed_among(session: Session, viewer_id: str | None, user_ids: list[str]) -> set[str]:
    if not viewer_id or not user_ids:
        return set()
    return set(session.execute(
        select(Follow.followee_id).where(Follow.follower_id == viewer_id, Follow.followee_id.in_(user_ids))
    ).scalars())


def _requested_among(session: Session, viewer_id: str | None, user_ids: list[str]) -> set[str]:
    if not viewer_id or not user_ids:
        return set()
    return set(session.execute(
        select(FollowRequest.owner_id)
        .where(FollowRequest.requester_id == viewer_id, FollowRequest.owner_id.in_(user_ids))
    ).scalars())
