"""Reports and removals of what events holds: posts, events and media.

auth keeps the reports (services.auth.moderation). It asks here whether a
reporter may see what they report, and for a snapshot of it; and when a
moderator removes it, auth records ContentRemoved and events removes it here:
- a post is deleted, with the uploads it shows;
- an event is cancelled (its participants are told, as for any cancellation)
  and hidden from everyone, its organizer included (schedule.visible_to);
  the posts on it go out of sight with it;
- a media item is deleted, and dropped from the posts and covers that show it.
Open apps are then told (PublicContentRemoved) to drop it.
"""
from typing import Any

from sqlalchemy import any_, cast, delete, func, literal, select, update
from sqlalchemy.dialects.postgresql import UUID

from services.events import exceptions, social
from services.events.models import Event, Media, Post
from services.events.people import Auth
from services.events.schedule import cancel, visible_event
from services.shared import clock, contracts
from services.shared.unit_of_work import UnitOfWork

# A snapshot: what a moderator sees of reported content, as it was when reported.
Snapshot = dict[str, Any]


def _media_url(media_id: str) -> str:
    return f"/media/{media_id}"


def snapshot(uow: UnitOfWork, auth: Auth, viewer_id: str, target_type: str, target_id: str) -> Snapshot | None:
    """What the viewer reports ({author_id, text, media_urls, ...}), or None if
    there is no such post, event or media item that the viewer may see."""
    try:
        if target_type == "post":
            # No author summary is fetched: auth, which asks, knows its own users.
            post = social.visible_post(uow.session, auth, viewer_id, target_id)
            return {"author_id": post.author_id, "text": post.body, "event_id": post.event_id,
                    "media_urls": [_media_url(media_id) for media_id in post.media_ids]}
        if target_type == "event":
            event = visible_event(uow.session, auth, viewer_id, target_id)
            return {"author_id": event.organizer_id, "title": event.title, "text": event.description,
                    "location": event.location, "visibility": event.visibility,
                    "media_urls": [_media_url(event.cover_media_id)] if event.cover_media_id else []}
    except (exceptions.PostNotFound, exceptions.EventNotFound):
        return None
    if target_type == "media":
        # Media ids are unguessable and their URLs public: whoever names one has seen it.
        media = uow.session.get(Media, target_id)
        if media is None:
            return None
        return {"author_id": media.owner_id, "text": None, "content_type": media.content_type,
                "media_urls": [_media_url(media.id)]}
    return None


def remove(uow: UnitOfWork, target_type: str, target_id: str) -> list[str]:
    """Remove a post, event or media item for good (nothing if it is gone
    already, or not ours). Returns the media ids whose bytes the caller deletes
    from storage once this is committed."""
    removers = {"post": _remove_post, "event": _remove_event, "media": _remove_media}
    if target_type not in removers:
        return []
    removed_media, removed = removers[target_type](uow, target_id)
    if removed:
        uow.record(contracts.PublicContentRemoved(target_type=target_type, target_id=target_id))
    return removed_media


def _remove_post(uow: UnitOfWork, post_id: str) -> tuple[list[str], bool]:
    session = uow.session
    media_ids = session.execute(delete(Post).where(Post.id == post_id).returning(Post.media_ids)).scalar()
    if media_ids is None:
        return [], False
    # What a reported post showed is usually what was reported: its uploads go with it.
    for media_id in media_ids:
        _forget_media(uow, media_id)
    return list(media_ids), True


def _remove_event(uow: UnitOfWork, event_id: str) -> tuple[list[str], bool]:
    event = uow.session.execute(select(Event).where(Event.id == event_id).with_for_update()).scalar_one_or_none()
    if event is None or event.removed_at is not None:
        return [], False
    if event.status == "active":
        cancel(uow, event, reason="removed_by_moderator")
    event.removed_at = clock.now()
    return [], True


def _remove_media(uow: UnitOfWork, media_id: str) -> tuple[list[str], bool]:
    removed = _forget_media(uow, media_id)
    return ([media_id], True) if removed else ([], False)


def _forget_media(uow: UnitOfWork, media_id: str) -> bool:
    """Delete an upload's row, and drop it from every post and cover showing it."""
    session = uow.session
    removed = session.execute(delete(Media).where(Media.id == media_id).returning(Media.id)).scalar()
    as_uuid = cast(literal(media_id), UUID(as_uuid=False))
    session.execute(
        update(Post).where(as_uuid == any_(Post.media_ids)).values(media_ids=func.array_remove(Post.media_ids, as_uuid))
    )
    session.execute(update(Event).where(Event.cover_media_id == media_id).values(cover_media_id=None))
    return removed is not None
