"""Notifications: stored per user, listed newest first, marked read.

They are made from domain events (a follow, someone joining your event, a
message while you were offline), never for someone who blocks the user whose
action it was, nor, for messages, for someone who mutes the sender
(services.messages.safety). Each handler claims the event's envelope id
first, in the same unit of work as the notification, so a redelivered event
changes nothing. Handlers take the event as its contract
(services.shared.contracts) validated it.
"""
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, literal, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert

from services.messages import safety
from services.messages.conversations import preview, remove_message
from services.messages.models import FollowNotice, Notification, Reaction
from services.shared import clock, contracts
from services.shared.unit_of_work import UnitOfWork, table_of

NOTIFICATION_KINDS = ("new_follower", "follow_requested", "follow_request_approved", "event_participant_joined",
                      "event_cancelled", "message")
# However often two people follow and unfollow (or ask and take it back),
# each kind of follow notification reaches its recipient at most this often.
FOLLOW_NOTICE_INTERVAL = timedelta(hours=24)
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
    """Tell the followee of a new follower; when the followee approved a
    request, tell the follower instead (the followee knows: they approved)."""
    if not uow.first_delivery(event, "notify_user_followed"):
        return
    if event.follower_id == event.followee_id:
        return
    if event.via_request:
        # The owner approved: the follower hears of it, unless either blocks the other.
        if not safety.not_to_notify(uow.session, event.followee_id, [event.follower_id], mutes_count=False):
            _notify_once_a_day(uow, "follow_request_approved", event.follower_id, event.followee_id,
                               event.follower_id, {"user_id": event.followee_id})
    elif not safety.not_to_notify(uow.session, event.follower_id, [event.followee_id], mutes_count=False):
        _notify_once_a_day(uow, "new_follower", event.follower_id, event.followee_id,
                           event.followee_id, {"follower_id": event.follower_id})


def on_follow_requested(uow: UnitOfWork, event: contracts.FollowRequested) -> None:
    """Tell a private account's owner that someone asked to follow them."""
    if not uow.first_delivery(event, "notify_follow_requested"):
        return
    if event.requester_id != event.owner_id and not safety.not_to_notify(
            uow.session, event.requester_id, [event.owner_id], mutes_count=False):
        _notify_once_a_day(uow, "follow_requested", event.requester_id, event.owner_id,
                           event.owner_id, {"follower_id": event.requester_id})


def _notify_once_a_day(uow: UnitOfWork, kind: str, follower_id: str, followee_id: str, recipient_id: str,
                       data: dict[str, Any]) -> None:
    """Notify unless this kind went out for this pair within FOLLOW_NOTICE_INTERVAL.
    The claim is one statement on the pair's row: of two handled at once, the
    second waits for the first to commit and then finds the notice fresh."""
    now = clock.now()
    claimed = uow.session.execute(
        insert(FollowNotice).values(kind=kind, follower_id=follower_id, followee_id=followee_id, notified_at=now)
        .on_conflict_do_update(
            index_elements=[FollowNotice.follower_id, FollowNotice.followee_id, FollowNotice.kind],
            set_={"notified_at": now},
            where=FollowNotice.notified_at <= now - FOLLOW_NOTICE_INTERVAL,
        )
        .returning(FollowNotice.kind)
    ).first()
    if claimed:
        notify(uow, recipient_id, kind, data)


def on_user_deleted(uow: UnitOfWork, event: contracts.UserDeleted) -> None:
    """A deleted account's notifications and reactions go with it; their
    messages stay for the other members, who see them under the deleted-user shape."""
    if not uow.first_delivery(event, "forget_deleted_user"):
        return
    uow.session.execute(table_of(Notification).delete().where(Notification.user_id == event.user_id))
    # Reactions are read into every message's answer: the account's go, its messages stay.
    uow.session.execute(table_of(Reaction).delete().where(Reaction.user_id == event.user_id))
    safety.forget_user(uow, event.user_id)
    uow.session.execute(table_of(FollowNotice).delete().where(
        or_(FollowNotice.follower_id == event.user_id, FollowNotice.followee_id == event.user_id)))


def on_content_removed(uow: UnitOfWork, event: contracts.ContentRemoved) -> None:
    """A moderator removed a message: it becomes its placeholder, and the
    notifications that quote it go."""
    if event.target_type not in contracts.REMOVABLE_IN_MESSAGES or not uow.first_delivery(event, "content_removed"):
        return
    if remove_message(uow, event.target_id):
        uow.session.execute(table_of(Notification).delete().where(
            Notification.type == "message", Notification.data["message_id"].astext == event.target_id))


def on_participant_joined(uow: UnitOfWork, event: contracts.ParticipantJoined) -> None:
    """Tell the organizer who joined their event (`event.event`, the calendar
    event; `event.envelope_id` is the id of this domain event)."""
    if not uow.first_delivery(event, "notify_participant_joined"):
        return
    if event.organizer_id == event.user_id:
        return
    if not safety.not_to_notify(uow.session, event.user_id, [event.organizer_id], mutes_count=False):
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
    """Notify the recipients who had no socket open when the message went out,
    except those who block or mute its sender. One unread notification per
    conversation: later messages update it, so someone away from a busy group
    finds one entry, not hundreds."""
    if not uow.first_delivery(event, "notify_offline_recipients"):
        return
    message = event.message
    recipients = [user_id for user_id in event.recipient_ids if user_id != message.sender_id]
    silenced = safety.not_to_notify(uow.session, message.sender_id, recipients, mutes_count=True)
    recipients = [user_id for user_id in recipients if user_id not in silenced]
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
