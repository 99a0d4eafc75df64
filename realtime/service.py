"""realtime: pushes the messages service's domain events to users' sockets.

Each domain event reaches ONE replica of this service (Nameko's default
service-pool handler), which emits through the Redis client manager to every
replica holding a socket of a recipient: each connected recipient gets it once.
"""
import logging

from http_edge import health
from realtime.membership import Members
from realtime.sockets import Sockets, on_socket
from services.shared.errors import InvalidInput, NotFound
from services.shared.events import durable_handler
from services.shared.ids import parse_uuid
from services.shared.observability import Observability
from services.shared.redis import Redis
from services.shared.rpc import BoundedRpcProxy

log = logging.getLogger(__name__)

# How long an event id stays marked as pushed, so that an event the broker
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

    @durable_handler("messages", "message_sent")
    def on_message_sent(self, payload):
        self._push(payload, "message:new", lambda event: {"message": event.get("message")})

    @durable_handler("messages", "reaction_added")
    def on_reaction_added(self, payload):
        self._push(payload, "message:reaction", _reaction)

    @durable_handler("messages", "reaction_removed")
    def on_reaction_removed(self, payload):
        self._push(payload, "message:reaction", _reaction)

    @durable_handler("messages", "conversation_read")
    def on_conversation_read(self, payload):
        self._push(payload, "conversation:read", _fields("conversation_id", "user_id", "message_id"))

    @durable_handler("messages", "notification_created")
    def on_notification_created(self, payload):
        self._push(payload, "notification:new", lambda event: {"notification": event.get("notification")})

    @durable_handler("auth", "user_deleted")
    def on_user_deleted(self, payload):
        """A closed account's sockets close at once, on every replica."""
        user_id = parse_uuid(payload.get("user_id")) if isinstance(payload, dict) else None
        if user_id:
            self.sockets.close_user(user_id)

    def _push(self, payload, socket_event, shape):
        """Emit shape(payload) as socket_event to the payload's recipients, once per event id.

        A redelivered event (the broker, the outbox, an operator's replay) is
        not published again once this event id is marked pushed. An event is
        marked only after it was published, so a push is never lost to a mark
        taken by a worker that then failed; a publish that is repeated (its
        reply was lost, or the mark was lost with Redis's memory) is dropped on
        receipt by every replica (realtime.delivered).
        """
        recipients = payload.get("recipient_ids") if isinstance(payload, dict) else None
        event_id = parse_uuid(payload.get("event_id")) if isinstance(payload, dict) else None
        if not isinstance(recipients, list) or event_id is None:
            return
        # Not pushed while this replica is deaf to the channel: Redis has just
        # come back, and the other replicas may be re-subscribing too.
        self.sockets.check_subscribed()
        if self.redis.exists(_pushed_key(event_id)):
            return
        # event_id goes to the clients as well: the same change always carries
        # the same id, so a client can drop what it has seen.
        self.sockets.emit_to_users([user_id for user_id in recipients if parse_uuid(user_id)],
                                   socket_event, dict(shape(payload), event_id=event_id), push_id=event_id)
        try:
            self.redis.set(_pushed_key(event_id), 1, ex=PUSHED_TTL_SECONDS)
        except Exception:  # pushed all the same; a redelivery's repeat is dropped on receipt
            log.warning("push %s not marked as pushed", event_id, exc_info=True)

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


def _pushed_key(event_id):
    return "realtime:pushed:" + event_id


def _fields(*keys):
    return lambda payload: {key: payload.get(key) for key in keys}


_reaction = _fields("message_id", "conversation_id", "user_id", "emoji", "action")
