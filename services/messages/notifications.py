"""Notifications: stored per user, listed newest first, marked read.

They are made from domain events (a follow, someone joining your event, a
message while you were offline). Each handler claims the event's envelope id
first, in the same unit of work as the notification, so a redelivered event
changes nothing. Handlers take the event as its contract
(services.shared.contracts) validated it.
"""
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import func, literal, select, tuple_, update

from services.messages.conversations import preview
from services.messages.models import Notification
from services.shared import clock, contracts
from services.shared.unit_of_work import UnitOfWork, table_of

NOTIFICATION_KINDS = ("new_follower", "event_participant_joined", "event_cancelled", "message")
MAX_IDS_PER_CALL = 100


class Presence(Protocol):
    """Who has a socket open now (services.shared.presence)."""

    def online_among(self, user_ids: Iterable[str]) -> set[str]: ...


def notification_summary(notification: Notification) -> contracts.NotificationSummary:
    """A notification as its user sees it: what the API answers and NotificationCreated carries."""
    return contracts.NotificationSummary(
        id=notification.id,
        type=notification.type,
        data=notification.data,
        created_at=clock.iso(notification.created_at),
        read_at=clock.iso(notification.read_at),
    )


def notify(uow: UnitOfWork, user_id: str, kind: str, data: dict[str, Any]) -> Notification:
    """Store a notification and record NotificationCreated."""
    notification = Notification(user_id=user_id, type=kind, data=data, created_at=clock.now())
    uow.session.add(notification)
    uow.session.flush()
    _announce(uow, notification)
    return notification


def _announce(uow: UnitOfWork, notification: Notification) -> None:
    uow.record(contracts.NotificationCreated(
        notification=notification_summary(notification),
        user_id=notification.user_id,
        recipient_ids=[notification.user_id],
    ))


def on_user_followed(uow: UnitOfWork, event: contracts.UserFollowed) -> None:
    if not uow.first_delivery(event, "notify_user_followed"):
        return
    if event.follower_id != event.followee_id:
        notify(uow, event.followee_id, "new_follower", {"follower_id": event.follower_id})


def on_user_deleted(uow: UnitOfWork, event: contracts.UserDeleted) -> None:
    """A deleted account's notifications go with it; their messages stay for
    the other members, who see them under the deleted-user shape."""
    if not uow.first_delivery(event, "forget_deleted_user"):
        return
    uow.session.execute(table_of(Notification).delete().where(Notification.user_id == event.user_id))


def on_participant_joined(uow: UnitOfWork, event: contracts.ParticipantJoined) -> None:
    """Tell the organizer who joined their event (`event.event`, the calendar
    event; `event.envelope_id` is the id of this domain event)."""
    if not uow.first_delivery(event, "notify_participant_joined"):
        return
    if event.organizer_id != event.user_id:
        notify(uow, event.organizer_id, "event_participant_joined", {
            "event_id": event.event.id, "event_title": event.event.title, "user_id": event.user_id,
        })


def on_event_cancelled(uow: UnitOfWork, event: contracts.EventCancelled) -> None:
    """Tell everyone who had joined an event that it is cancelled."""
    if not uow.first_delivery(event, "notify_event_cancelled"):
        return
    data: dict[str, Any] = {"event_id": event.event.id, "event_title": event.event.title}
    if event.reason:
        data["reason"] = event.reason
    for user_id in dict.fromkeys(event.participant_ids):
        if user_id != event.organizer_id:
            notify(uow, user_id, "event_cancelled", data)


def on_message_sent(uow: UnitOfWork, presence: Presence, event: contracts.MessageSent) -> None:
    """Notify the recipients who had no socket open when the message went out.
    One unread notification per conversation: later messages update it, so
    someone away from a busy group finds one entry, not hundreds."""
    if not uow.first_delivery(event, "notify_offline_recipients"):
        return
    message = event.message
    recipients = [user_id for user_id in event.recipient_ids if user_id != message.sender_id]
    online = presence.online_among(recipients)
    for user_id in recipients:
        if user_id not in online:
            _notify_of_message(uow, user_id, message)


def _notify_of_message(uow: UnitOfWork, user_id: str, message: contracts.MessageSummary) -> None:
    data = {
        "conversation_id": message.conversation_id,
        "message_id": message.id,
        "sender_id": message.sender_id,
        "preview": preview(message.body),
    }
    session = uow.session
    # Two messages handled at once must not both find "no unread one" and add two.
    session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"notify:{user_id}:{data['conversation_id']}"))))
    unread = session.execute(
        select(Notification).where(
            Notification.user_id == user_id, Notification.type == "message", Notification.read_at.is_(None),
            Notification.data["conversation_id"].astext == data["conversation_id"],
        )
    ).scalars().first()
    if unread is None:
        notify(uow, user_id, "message", dict(data, count=1))
        return
    unread.data = dict(data, count=unread.data.get("count", 1) + 1)
    unread.created_at = clock.now()
    session.flush()
    _announce(uow, unread)


def notification_page(uow: UnitOfWork, user_id: str, unread_only: bool, limit: int,
                      after: tuple[datetime, str] | None) -> Sequence[Notification]:
    """The user's notifications newest first: up to limit + 1 rows (the extra one says there is more)."""
    query = (
        select(Notification).where(Notification.user_id == user_id)
        .order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit + 1)
    )
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    if after:
        query = query.where(tuple_(Notification.created_at, Notification.id) < tuple_(*map(literal, after)))
    return uow.session.execute(query).scalars().all()


def mark_read(uow: UnitOfWork, user_id: str, ids: Collection[str] | None = None) -> None:
    """Mark the caller's notifications read: those in ids, or all of them."""
    query = update(Notification).where(Notification.user_id == user_id, Notification.read_at.is_(None))
    if ids is not None:
        query = query.where(Notification.id.in_(ids))
    uow.session.execute(query.values(read_at=clock.now()))


def unread_count(uow: UnitOfWork, user_id: str) -> int | None:
    return uow.session.scalar(
        select(func.count()).select_from(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
    )
