"""Notifications: stored per user, listed newest first, marked read.

They are made from domain events (a follow, someone joining your event, a
message while you were offline). Each handler claims the event id first, in the
same transaction as the notification, so a redelivered event changes nothing.
"""

from sqlalchemy import func, select, tuple_, update

from services.messages.conversations import preview
from services.messages.models import Notification, ProcessedEvent
from services.messages.schemas import notification_view
from services.shared import clock
from services.shared.ids import parse_uuid
from services.shared.outbox import first_delivery


def notify(session, outbox, user_id, kind, data):
    """Store a notification and record notification_created; the caller commits."""
    notification = Notification(user_id=user_id, type=kind, data=data, created_at=clock.now())
    session.add(notification)
    session.flush()
    return _announce(outbox, session, notification)


def _announce(outbox, session, notification):
    view = notification_view(notification)
    outbox.add(session, "notification_created", {
        "notification": view, "user_id": notification.user_id, "recipient_ids": [notification.user_id],
    })
    return view


def _once(session, payload, handler):
    """Claim the event for this handler; False if it was handled before or is not ours to handle."""
    event_id = parse_uuid(payload.get("event_id")) if isinstance(payload, dict) else None
    return event_id is not None and first_delivery(session, ProcessedEvent, event_id, handler)


def on_user_followed(session, outbox, payload):
    if not _once(session, payload, "notify_user_followed"):
        session.rollback()
        return
    follower_id, followee_id = parse_uuid(payload.get("follower_id")), parse_uuid(payload.get("followee_id"))
    if follower_id and followee_id and follower_id != followee_id:
        notify(session, outbox, followee_id, "new_follower", {"follower_id": follower_id})
    session.commit()


def on_user_deleted(session, payload):
    """A deleted account's notifications go with it; their messages stay for
    the other members, shown under their id alone."""
    if not _once(session, payload, "forget_deleted_user"):
        session.rollback()
        return
    user_id = parse_uuid(payload.get("user_id"))
    if user_id:
        session.execute(Notification.__table__.delete().where(Notification.user_id == user_id))
    session.commit()


def _joined_event(payload):
    """The event joined, as the events service describes it: {id, title, ...}.
    (The payload's own `event_id` names the domain event itself.)"""
    event = payload.get("event")
    if not isinstance(event, dict) or not parse_uuid(event.get("id")):
        return None
    title = event.get("title")
    return {"id": parse_uuid(event["id"]), "title": title if isinstance(title, str) else None}


def on_participant_joined(session, outbox, payload):
    if not _once(session, payload, "notify_participant_joined"):
        session.rollback()
        return
    organizer_id, user_id = parse_uuid(payload.get("organizer_id")), parse_uuid(payload.get("user_id"))
    event = _joined_event(payload)
    if organizer_id and user_id and event and organizer_id != user_id:
        notify(session, outbox, organizer_id, "event_participant_joined", {
            "event_id": event["id"], "event_title": event["title"], "user_id": user_id,
        })
    session.commit()


def on_message_sent(session, outbox, presence, payload):
    """Notify the recipients who had no socket open when the message went out.
    One unread notification per conversation: later messages update it, so
    someone away from a busy group finds one entry, not hundreds."""
    if not _once(session, payload, "notify_offline_recipients"):
        session.rollback()
        return
    message = payload.get("message") or {}
    sender_id = message.get("sender_id")
    recipients = [user_id for user_id in payload.get("recipient_ids", []) if user_id != sender_id]
    online = presence.online_among(recipients)
    for user_id in recipients:
        if user_id not in online:
            _notify_of_message(session, outbox, user_id, message)
    session.commit()


def _notify_of_message(session, outbox, user_id, message):
    data = {
        "conversation_id": message.get("conversation_id"),
        "message_id": message.get("id"),
        "sender_id": message.get("sender_id"),
        "preview": preview(message.get("body", "")),
    }
    # Two messages handled at once must not both find "no unread one" and add two.
    session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"notify:{user_id}:{data['conversation_id']}"))))
    unread = session.execute(
        select(Notification).where(
            Notification.user_id == user_id, Notification.type == "message", Notification.read_at.is_(None),
            Notification.data["conversation_id"].astext == data["conversation_id"],
        )
    ).scalars().first()
    if unread is None:
        return notify(session, outbox, user_id, "message", dict(data, count=1))
    unread.data = dict(data, count=unread.data.get("count", 1) + 1)
    unread.created_at = clock.now()
    session.flush()
    _announce(outbox, session, unread)


def notification_page(session, user_id, unread_only, limit, after):
    query = (
        select(Notification).where(Notification.user_id == user_id)
        .order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit + 1)
    )
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    if after:
        query = query.where(tuple_(Notification.created_at, Notification.id) < tuple_(*after))
    return session.execute(query).scalars().all()


def mark_read(session, user_id, ids=None):
    """Mark the caller's notifications read: those in ids, or all of them."""
    query = update(Notification).where(Notification.user_id == user_id, Notification.read_at.is_(None))
    if ids is not None:
        query = query.where(Notification.id.in_(ids))
    session.execute(query.values(read_at=clock.now()))
    session.commit()


def unread_count(session, user_id):
    return session.scalar(
        select(func.count()).select_from(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
    )
