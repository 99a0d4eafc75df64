"""An account's part of its data export held by events: the events it
organized and joined, its posts and its uploads (services.shared.export)."""
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from services.events.models import Event, Media, Participant, Post
from services.shared.clock import iso
from services.shared.export import Sections
from services.shared.unit_of_work import UnitOfWork


def _event(event: Event) -> dict[str, Any]:
    return {
        "id": event.id, "title": event.title, "description": event.description, "location": event.location,
        "is_online": event.is_online, "visibility": event.visibility, "status": event.status,
        "timezone": event.timezone, "starts_at": iso(event.starts_at), "ends_at": iso(event.ends_at),
        "rrule": event.rrule, "capacity": event.capacity, "cover_media_id": event.cover_media_id,
        "created_at": iso(event.created_at),
    }


def export_user(uow: UnitOfWork, user_id: str, media_url: Callable[[str], str]) -> dict[str, Any]:
    """{"sections": {events_organized, events_joined, posts, media}, "truncated": [...]},
    each oldest first; media carry the URL they load from (media_url(id))."""
    session = uow.session
    sections = Sections()
    sections.add("events_organized", session,
                 select(Event).where(Event.organizer_id == user_id).order_by(Event.created_at, Event.id), _event)
    sections.add(
        "events_joined", session,
        select(Event, Participant.joined_at).join(Participant, Participant.event_id == Event.id)
        .where(Participant.user_id == user_id).order_by(Participant.joined_at, Event.id),
        lambda row: dict(_event(row[0]), joined_at=iso(row[1])), scalars=False)
    sections.add(
        "posts", session, select(Post).where(Post.author_id == user_id).order_by(Post.created_at, Post.id),
        lambda post: {"id": post.id, "body": post.body, "event_id": post.event_id,
                      "media_ids": list(post.media_ids or []), "created_at": iso(post.created_at)})
    sections.add(
        "media", session, select(Media).where(Media.owner_id == user_id).order_by(Media.created_at, Media.id),
        lambda item: {"id": item.id, "url": media_url(item.id), "content_type": item.content_type,
                      "size": item.size, "created_at": iso(item.created_at)})
    return sections.document()
