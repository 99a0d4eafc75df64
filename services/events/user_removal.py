"""What happens here when auth deletes (deactivates) a user."""
from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from services.events import media, people
from services.events.models import DeletedUser, Event, Follow, FollowSync, Participant, Post
from services.events.schedule import cancel
from services.shared import clock
from services.shared.unit_of_work import UnitOfWork


def forget_user(uow: UnitOfWork, user_id: str) -> list[str]:
    """Cancel the user's events still to come (participants are told through
    event_cancelled), free their seats, and delete their posts, uploads,
    follow edges, blocks and mutes. Returns the media ids whose bytes the
    caller removes from storage once this is committed."""
    session = uow.session
    upcoming = session.execute(
        select(Event).where(
            Event.organizer_id == user_id, Event.status == "active", Event.series_ends_at > clock.now(),
        ).with_for_update()
    ).scalars().all()
    for event in upcoming:
        cancel(uow, event, reason="organizer_deleted")
    left = session.execute(
        delete(Participant).where(Participant.user_id == user_id).returning(Participant.event_id)
    ).scalars().all()
    if left:
        session.execute(
            update(Event).where(Event.id.in_(left)).values(participants_count=Event.participants_count - 1)
        )
    session.execute(insert(DeletedUser).values(user_id=user_id).on_conflict_do_nothing())
    session.execute(delete(Post).where(Post.author_id == user_id))
    session.execute(delete(Follow).where(or_(Follow.follower_id == user_id, Follow.followee_id == user_id)))
    session.execute(delete(FollowSync).where(FollowSync.user_id == user_id))
    people.forget_relations(uow, user_id)
    return media.delete_all_of(session, user_id)
