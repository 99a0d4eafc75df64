"""The domain events that services publish to each other, one typed contract each.

A producer builds the event from its contract and records it in its unit of
work (`uow.record(UserFollowed(follower_id=..., followee_id=...))`); the relay
publishes the contract's payload under its `event_type`, from its `source`
service. A consumer declares the contract it handles
(`@consumes(contracts.UserFollowed)`, services.shared.events) and is handed
the event validated against it; a payload the contract refuses is dead-lettered
and never reaches the handler.

Every payload also carries its envelope id (ENVELOPE_ID), given when the event
is recorded: the id of this domain event, by which consumers recognise a
redelivery. It is not the id of anything the event is about.

A contract that no service of LifyTP consumes says so (`outside=True`): it is
published for integrations, and the test of the contracts holds every other one
to having a consumer.
"""
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import marshmallow
import marshmallow_dataclass

ENVELOPE_ID = "domain_event_id"
# Events recorded before the envelope id had its own name carried it as
# `event_id`; an outbox or queue may still hold some after an upgrade.
LEGACY_ENVELOPE_ID = "event_id"


class MalformedEvent(ValueError):
    """A payload its contract refuses: a bug of its producer, never worth a retry."""


def _canonical_uuid(value: str) -> None:
    try:
        canonical = str(uuid.UUID(value)) == value
    except (TypeError, ValueError, AttributeError):
        canonical = False
    if not canonical:
        raise marshmallow.ValidationError("Not a UUID in canonical form.")


Id = marshmallow_dataclass.NewType("Id", str, validate=_canonical_uuid)


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    source: ClassVar[str]
    event_type: ClassVar[str]
    outside: ClassVar[bool] = False
    # Set on the events a consumer receives: see ENVELOPE_ID.
    envelope_id: Id | None = field(default=None, metadata={"data_key": ENVELOPE_ID})

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = _schema(type(self)).dump(self)
        payload.pop(ENVELOPE_ID, None)
        return payload

    @classmethod
    def from_payload(cls, payload: object) -> Self:
        if not isinstance(payload, dict):
            raise MalformedEvent(f"{cls.__name__}: the payload is not an object")
        if ENVELOPE_ID not in payload and LEGACY_ENVELOPE_ID in payload:
            payload = {key: value for key, value in payload.items() if key != LEGACY_ENVELOPE_ID} | {
                ENVELOPE_ID: payload[LEGACY_ENVELOPE_ID]}
        try:
            event: Self = _schema(cls).load(payload, unknown=marshmallow.EXCLUDE)
        except marshmallow.ValidationError as exc:
            raise MalformedEvent(f"{cls.__name__}: {exc.messages}") from None
        if event.envelope_id is None:
            raise MalformedEvent(f"{cls.__name__}: no {ENVELOPE_ID}")
        return event


_SCHEMAS: dict[type[DomainEvent], marshmallow.Schema] = {}


def _schema(contract: type[DomainEvent]) -> marshmallow.Schema:
    if contract not in _SCHEMAS:
        _SCHEMAS[contract] = marshmallow_dataclass.class_schema(contract)()
    return _SCHEMAS[contract]


def every_contract() -> list[type[DomainEvent]]:
    """Every concrete contract, for the test that each is consumed."""
    found: list[type[DomainEvent]] = []
    pending = list(DomainEvent.__subclasses__())
    while pending:
        contract = pending.pop()
        pending.extend(contract.__subclasses__())
        if "event_type" in vars(contract):
            found.append(contract)
    return sorted(found, key=lambda contract: (contract.source, contract.event_type))


# auth ----------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class UserRegistered(DomainEvent):
    source = "auth"
    event_type = "user_registered"
    outside = True
    user_id: Id
    username: str


@dataclass(frozen=True, kw_only=True)
class UserFollowed(DomainEvent):
    source = "auth"
    event_type = "user_followed"
    follower_id: Id
    followee_id: Id
    # The followee (a private account) approved the follower's request: it is
    # the follower who is told, not the followee who just approved.
    via_request: bool = False


@dataclass(frozen=True, kw_only=True)
class FollowRequested(DomainEvent):
    """Someone asked to follow a private account (no follow exists yet)."""
    source = "auth"
    event_type = "follow_requested"
    requester_id: Id
    owner_id: Id


@dataclass(frozen=True, kw_only=True)
class UserUnfollowed(DomainEvent):
    source = "auth"
    event_type = "user_unfollowed"
    follower_id: Id
    followee_id: Id


@dataclass(frozen=True, kw_only=True)
class RelationChanged(DomainEvent):
    """user_id began or stopped blocking (muting) target_id. The replicas that
    enforce blocks and mutes keep the change of a pair with the highest
    version: auth numbers the changes of a pair in the order they commit, so
    events handled out of order (redelivered, requeued, taken by two workers)
    never bring back a state that was changed since."""
    user_id: Id
    target_id: Id
    version: int


@dataclass(frozen=True, kw_only=True)
class UserBlocked(RelationChanged):
    source = "auth"
    event_type = "user_blocked"


@dataclass(frozen=True, kw_only=True)
class UserUnblocked(RelationChanged):
    source = "auth"
    event_type = "user_unblocked"


@dataclass(frozen=True, kw_only=True)
class UserMuted(RelationChanged):
    source = "auth"
    event_type = "user_muted"


@dataclass(frozen=True, kw_only=True)
class UserUnmuted(RelationChanged):
    source = "auth"
    event_type = "user_unmuted"


@dataclass(frozen=True, kw_only=True)
class UserDeleted(DomainEvent):
    """An account was closed: every service forgets or hides what it holds of it."""
    source = "auth"
    event_type = "user_deleted"
    user_id: Id


# What a moderator may remove, and whose service holds it.
REMOVABLE_IN_EVENTS = ("post", "event", "media")
REMOVABLE_IN_MESSAGES = ("message",)


@dataclass(frozen=True, kw_only=True)
class ContentRemoved(DomainEvent):
    """A moderator removed content (target_type: post, event, media or message):
    the service that holds it removes it and tells open apps."""
    source = "auth"
    event_type = "content_removed"
    target_type: str
    target_id: Id


@dataclass(frozen=True, kw_only=True)
class SessionsRevoked(DomainEvent):
    """Access tokens stop working before they expire (services.shared.revocation):
    those of the sessions named, and with not_before (seconds since the epoch)
    every token of the account issued before that time. Consumers write it to
    the revocation list and close the sockets it covers."""
    source = "auth"
    event_type = "sessions_revoked"
    user_id: Id
    session_ids: list[Id] = field(default_factory=list)
    not_before: int | None = None


@dataclass(frozen=True, kw_only=True)
class MailQueued(DomainEvent):
    """A mail waits in auth's outgoing_mail table, committed: auth's mail
    worker writes and sends it. Only its id travels: what it says, and any
    token it carries, never pass through the broker."""
    source = "auth"
    event_type = "mail_queued"
    mail_id: Id


# events --------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class EventSummary:
    """What an event's domain events say of it (times are ISO 8601 UTC)."""
    id: Id
    title: str
    starts_at: str
    ends_at: str
    visibility: str
    status: str


@dataclass(frozen=True, kw_only=True)
class EventCreated(DomainEvent):
    source = "events"
    event_type = "event_created"
    outside = True
    event: EventSummary
    organizer_id: Id


@dataclass(frozen=True, kw_only=True)
class EventUpdated(DomainEvent):
    source = "events"
    event_type = "event_updated"
    outside = True
    event: EventSummary
    organizer_id: Id
    changed: list[str]


@dataclass(frozen=True, kw_only=True)
class EventCancelled(DomainEvent):
    source = "events"
    event_type = "event_cancelled"
    event: EventSummary
    organizer_id: Id
    # "organizer_deleted" when the organizer's account was closed.
    reason: str | None = None
    # Who had joined (the organizer left out): each is told. Events recorded
    # before it was carried have none.
    participant_ids: list[Id] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class ParticipantJoined(DomainEvent):
    source = "events"
    event_type = "participant_joined"
    event: EventSummary
    organizer_id: Id
    user_id: Id


@dataclass(frozen=True, kw_only=True)
class PublicContentRemoved(DomainEvent):
    """A post, event or media item is gone for good (a moderator removed it):
    every open app drops it, whoever may have it on screen."""
    source = "events"
    event_type = "public_content_removed"
    target_type: str
    target_id: Id


# messages ------------------------------------------------------------------------
# Each names the members who should hear of it (recipient_ids), so realtime
# delivers it to their sockets without a database.

@dataclass(frozen=True, kw_only=True)
class ReactionSummary:
    emoji: str
    count: int
    user_ids: list[Id]


@dataclass(frozen=True, kw_only=True)
class MessageSummary:
    """A message as its members see it (the API's message answer)."""
    id: Id
    conversation_id: Id
    seq: int
    sender_id: Id
    body: str
    client_id: str | None
    created_at: str
    reactions: list[ReactionSummary] = field(default_factory=list)
    # Never true for a message just sent; the API answers a removed one with it.
    deleted: bool = False


@dataclass(frozen=True, kw_only=True)
class MessageSent(DomainEvent):
    source = "messages"
    event_type = "message_sent"
    message: MessageSummary
    conversation_id: Id
    sender_id: Id
    recipient_ids: list[Id]


@dataclass(frozen=True, kw_only=True)
class ReactionChanged(DomainEvent):
    message_id: Id
    conversation_id: Id
    user_id: Id
    emoji: str
    action: str
    recipient_ids: list[Id]


@dataclass(frozen=True, kw_only=True)
class ReactionAdded(ReactionChanged):
    source = "messages"
    event_type = "reaction_added"
    action: str = "added"


@dataclass(frozen=True, kw_only=True)
class ReactionRemoved(ReactionChanged):
    source = "messages"
    event_type = "reaction_removed"
    action: str = "removed"


@dataclass(frozen=True, kw_only=True)
class ConversationRead(DomainEvent):
    source = "messages"
    event_type = "conversation_read"
    conversation_id: Id
    user_id: Id
    message_id: Id
    recipient_ids: list[Id]


@dataclass(frozen=True, kw_only=True)
class NotificationSummary:
    """A notification as its user sees it (the API's notification answer)."""
    id: Id
    type: str
    data: dict[str, Any]
    created_at: str
    read_at: str | None


@dataclass(frozen=True, kw_only=True)
class NotificationCreated(DomainEvent):
    source = "messages"
    event_type = "notification_created"
    notification: NotificationSummary
    user_id: Id
    recipient_ids: list[Id]


@dataclass(frozen=True, kw_only=True)
class MessageRemoved(DomainEvent):
    """A message was removed: its members' apps show the placeholder in its place."""
    source = "messages"
    event_type = "message_removed"
    message_id: Id
    conversation_id: Id
    recipient_ids: list[Id]
