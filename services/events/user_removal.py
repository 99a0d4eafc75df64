"""What happens here when auth deletes (deactivates) a user."""
from datetime import UTC, datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from services.events import media
from services.events.models import DeletedUser, Event, Follow, FollowSync, Participant, Post, ProcessedEvent
from services.events.schedule import event_message
from services.shared.ids import parse_uuid
from services.shared.outbox import first_delivery


def forget_user(session, outbox, payload):
    """Once per user_deleted event: cancel the user's events still to come
    (participants are told through event_cancelled), free their seats, and
    delete their posts, uploads and follow edges. Returns the media ids whose
    bytes the caller removes from storage after this commits."""
    user_id, event_id = parse_uuid(payload.get("user_id")), parse_uuid(payload.get("event_id"))
    if not (user_id and event_id) or not first_delivery(session, ProcessedEvent, event_id, "user_deleted"):
        session.rollback()
        return []
    upcoming = session.execute(
        select(Event).where(
            Event.organizer_id == user_id, Event.status == "active", Event.series_ends_at > datetime.now(UTC),
        ).with_for_update()
    ).scalars().all()
    for event in upcoming:
        event.status = "cancelled"
        event.updated_at = datetime.now(UTC)
        session.flush()
        outbox.add(session, "event_cancelled", dict(event_message(event), reason="organizer_deleted"))
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
    removed_media = media.delete_all_of(session, user_id)
    session.commit()
    return removed_media
