"""The follow edges themselves: adding or removing one records the domain
event every replica of the graph (events' feed and visibility, messages'
notifications) learns it from. Whether an edge may be added (blocks, private
accounts) is decided by the callers, services.auth.accounts and .privacy."""
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from services.auth.models import Follow
from services.shared import contracts
from services.shared.unit_of_work import UnitOfWork, table_of


def follows(uow: UnitOfWork, follower_id: str, followee_id: str) -> bool:
    return uow.session.scalar(
        select(Follow.follower_id).where(Follow.follower_id == follower_id, Follow.followee_id == followee_id)
    ) is not None


def add_follow(uow: UnitOfWork, follower_id: str, followee_id: str, via_request: bool = False) -> bool:
    """Make follower_id follow followee_id (via_request: the followee approved
    a request); False (and nothing recorded) if they already did."""
    created = uow.session.execute(
        insert(Follow).values(follower_id=follower_id, followee_id=followee_id)
        .on_conflict_do_nothing().returning(Follow.follower_id)
    ).first()
    if created:
        uow.record(contracts.UserFollowed(follower_id=follower_id, followee_id=followee_id, via_request=via_request))
    return created is not None


def remove_follow(uow: UnitOfWork, follower_id: str, followee_id: str) -> bool:
    """End the follow; False (and nothing recorded) if there was none."""
    removed = uow.session.execute(
        table_of(Follow).delete()
        .where(Follow.follower_id == follower_id, Follow.followee_id == followee_id)
        .returning(Follow.follower_id)
    ).first()
    if removed:
        uow.record(contracts.UserUnfollowed(follower_id=follower_id, followee_id=followee_id))
    return removed is not None
