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

# Remembered so that an event the broker or the outbox delivers twice is
# pushed once. Longer than any redelivery takes.
DELIVERED_TTL_SECONDS = 3600


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
    # later (services.shared.events); the claim per event id keeps it to one push.

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

    def _push(self, payload, socket_event, shape):
        """Emit shape(payload) as socket_event to the payload's recipients, once per event id."""
        recipients = payload.get("recipient_ids") if isinstance(payload, dict) else None
        if not isinstance(recipients, list):
            return
        # Not pushed while this replica is deaf to the channel: Redis has just
        # come back, and the other replicas may be re-subscribing too.
        self.sockets.check_subscribed()
        event_id = payload.get("event_id")
        if not self._first_push(event_id):
            return
        try:
            self.sockets.emit_to_users(
                [user_id for user_id in recipients if parse_uuid(user_id)], socket_event, shape(payload))
        except Exception:
            # Not pushed: give the claim back so that the redelivery pushes it.
            self._release(event_id)
            raise

    def _first_push(self, event_id):
        if not parse_uuid(event_id):
            return False
        return bool(self.redis.set("realtime:pushed:" + event_id, 1, nx=True, ex=DELIVERED_TTL_SECONDS))

    def _release(self, event_id):
        try:
            self.redis.delete("realtime:pushed:" + event_id)
        except Exception:  # Redis is down: the claim stays, and the push is lost
            log.warning("push claim for %s not released", event_id, exc_info=True)

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


def _fields(*keys):
    return lambda payload: {key: payload.get(key) for key in keys}


_reaction = _fields("message_id", "conversation_id", "user_id", "emoji", "action")
