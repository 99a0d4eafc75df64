"""realtime: pushes the messages service's domain events to users' sockets.

Each domain event reaches ONE replica of this service (Nameko's default
service-pool handler), which emits through the Redis client manager to every
replica holding a socket of a recipient: each connected recipient gets it once.
"""
import dataclasses
import logging
import uuid

from http_edge import health
from realtime.membership import Members
from realtime.sockets import Sockets, on_socket
from services.shared import contracts
from services.shared.errors import InvalidInput, NotFound
from services.shared.events import consumes
from services.shared.ids import parse_uuid
from services.shared.observability import Observability
from services.shared.redis import Redis
from services.shared.revocation import revocation_of
from services.shared.rpc import BoundedRpcProxy

log = logging.getLogger(__name__)

# How long an envelope id stays marked as pushed, so that an event the broker
# or the outbox delivers again is not published again. Longer than any
# redelivery takes; an operator's replay of older events is dropped on receipt
# by the replicas that remember it (realtime.delivered).
PUSHED_TTL_SECONDS = 3600


class RealtimeService(health.HealthEndpoints):
    name = "realtime"

    sockets = Sockets()
    members = Members()
    redis = Redis()
    broker = health.BrokerProbe()
    observability = Observability()
    messages = BoundedRpcProxy("messages")

    def readiness_probes(self):
        # "pubsub": this replica's sockets get other replicas' emits only while
        # it is subscribed to the Redis channel (it re-subscribes after a Redis restart).
        return {"broker": self.broker, "redis": self.redis.ping, "pubsub": self.sockets.check_subscribed}

    # Domain events → sockets -------------------------------------------------------
    # An event whose push fails because Redis is down is requeued and pushed
    # later (services.shared.events); each socket gets it once (_push).

    @consumes(contracts.MessageSent)
    def on_message_sent(self, event):
        self._push(event, "message:new", lambda event: {"message": _plain(event.message)})

    @consumes(contracts.ReactionAdded)
    def on_reaction_added(self, event):
        self._push(event, "message:reaction", _reaction)

    @consumes(contracts.ReactionRemoved)
    def on_reaction_removed(self, event):
        self._push(event, "message:reaction", _reaction)

    @consumes(contracts.ConversationRead)
    def on_conversation_read(self, event):
        self._push(event, "conversation:read", _fields("conversation_id", "user_id", "message_id"))

    @consumes(contracts.NotificationCreated)
    def on_notification_created(self, event):
        self._push(event, "notification:new", lambda event: {"notification": _plain(event.notification)})

    @consumes(contracts.MessageRemoved)
    def on_message_removed(self, event):
        self._push(event, "message:deleted", _fields("message_id", "conversation_id"))
        self._push(event, "content:removed",
                   lambda event: {"target_type": "message", "target_id": event.message_id})

    @consumes(contracts.PublicContentRemoved)
    def on_public_content_removed(self, event):
        """A removed post, event or media item may be on anyone's screen (a
        public event, a feed): every open app is told, and drops it if it has it."""
        self._push(event, "content:removed", _fields("target_type", "target_id"), everyone=True)

    @consumes(contracts.UserDeleted)
    def on_user_deleted(self, event):
        """A closed account's sockets close at once, on every replica."""
        self.sockets.close_user(event.user_id)

    @consumes(contracts.SessionsRevoked)
    def on_sessions_revoked(self, event):
        """A revoked session's (or account's) sockets close at once, on every replica."""
        self.sockets.close_revoked(revocation_of(event))

    def _push(self, event, socket_event, shape, everyone=False):
        """Emit shape(event) as socket_event to the event's recipients (or to
        every socket), once per envelope id and socket event.

        A redelivered event (the broker, the outbox, an operator's replay) is
        not published again once its envelope id is marked pushed. An event is
        marked only after it was published, so a push is never lost to a mark
        taken by a worker that then failed; a publish that is repeated (its
        reply was lost, or the mark was lost with Redis's memory) is dropped on
        receipt by every replica (realtime.delivered).
        """
        envelope_id = _push_id(event.envelope_id, socket_event)
        # Not pushed while this replica is deaf to the channel: Redis has just
        # come back, and the other replicas may be re-subscribing too.
        self.sockets.check_subscribed()
        if self.redis.exists(_pushed_key(envelope_id)):
            return
        # The envelope id goes to the clients as `event_id` (docs/API.md): the
        # same change always carries the same id, so a client can drop what it has seen.
        data = dict(shape(event), event_id=envelope_id)
        if everyone:
            self.sockets.emit_to_everyone(socket_event, data, push_id=envelope_id)
        else:
            self.sockets.emit_to_users(list(event.recipient_ids), socket_event, data, push_id=envelope_id)
        try:
            self.redis.set(_pushed_key(envelope_id), 1, ex=PUSHED_TTL_SECONDS)
        except Exception:  # pushed all the same; a redelivery's repeat is dropped on receipt
            log.warning("push %s not marked as pushed", envelope_id, exc_info=True)

    # Client events ---------------------------------------------------------------------

    @on_socket("typing")
    def typing(self, user_id, data):
        """Relay "user is typing" to the conversation's other members, if the
        sender is a member; anyone else learns nothing, not even that it exists."""
        conversation_id = parse_uuid(data.get("conversation_id"))
        if conversation_id is None or set(data) != {"conversation_id"}:
            raise InvalidInput(code="MALFORMED_EVENT",
                               details={"conversation_id": ["Send {conversation_id: <uuid>} only."]})
        members = self.members.members(conversation_id, self.messages.member_ids)
        if user_id not in members:
            raise NotFound("No such conversation.", code="CONVERSATION_NOT_FOUND")
        self.sockets.emit_to_users(
            sorted(members - {user_id}), "typing", {"conversation_id": conversation_id, "user_id": user_id},
        )
        return {"ok": True}


# content:removed goes beside message:deleted for a removed message: one
# domain event, two pushes, and each push needs an id of its own (a client
# drops an event_id it has seen). It always carries an id derived from the
# envelope id, the same at every redelivery.
_DERIVED_IDS = frozenset({"content:removed"})


def _push_id(envelope_id, socket_event):
    if socket_event in _DERIVED_IDS:
        return str(uuid.uuid5(uuid.UUID(envelope_id), socket_event))
    return envelope_id


def _pushed_key(event_id):
    return "realtime:pushed:" + event_id


def _fields(*keys):
    return lambda event: {key: getattr(event, key) for key in keys}


def _plain(summary):
    """A summary a contract carries (a message, a notification) as the JSON object the socket sends."""
    return dataclasses.asdict(summary)


_reaction = _fields("message_id", "conversation_id", "user_id", "emoji", "action")
