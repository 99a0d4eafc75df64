"""The messages service: conversations, messages, reactions, read state and notifications."""
from nameko.events import event_handler
from nameko.rpc import rpc

from http_edge import health
from http_edge.entrypoint import http
from http_edge.pagination import PageArgs, as_time, as_uuid, decode_cursor, page
from http_edge.validation import json_body, path_id, query_args
from services.messages import conversations, notifications, schemas
from services.messages.dependencies import PresenceProvider
from services.messages.exceptions import ConversationNotFound, MessageNotFound
from services.messages.models import Base
from services.messages.models import Outbox as OutboxTable
from services.shared.database import Database
from services.shared.ids import parse_uuid
from services.shared.outbox import Outbox
from services.shared.redis import Redis
from services.shared.rpc import BoundedRpcProxy


# The mixin is reached through its module: `nameko run` would take a bare
# imported class with entrypoints for a service of its own.
class MessagesService(health.HealthEndpoints):
    name = "messages"

    db = Database(Base)
    outbox = Outbox(OutboxTable)
    presence = PresenceProvider()
    redis = Redis()
    broker = health.BrokerProbe()
    auth = BoundedRpcProxy("auth")

    def readiness_probes(self):
        return {"database": health.database_probe(self.db), "broker": self.broker, "redis": self.redis.ping}

    # Conversations ---------------------------------------------------------------

    @http("POST", "/messages/conversations")
    def create_conversation(self, request):
        data = json_body(request, schemas.ConversationCreate())
        created, view = conversations.create_conversation(
            self.db.session, self.outbox, self.auth.get_users, request.user_id, data["member_ids"], data["title"],
        )
        return (201 if created else 200), view

    @http("GET", "/messages/conversations")
    def list_conversations(self, request):
        args = query_args(request, PageArgs())
        after = decode_cursor(args["cursor"], as_time, as_uuid)
        rows, views = conversations.conversation_page(
            self.db.session, self.auth.get_users, request.user_id, args["limit"], after,
        )
        return page(rows, args["limit"], lambda row: (row.last_activity_at, row.id), lambda row: views[row.id])

    @http("GET", "/messages/conversations/<string:id>")
    def get_conversation(self, request, id):
        return conversations.get_conversation(self.db.session, self.auth.get_users, request.user_id, _conversation(id))

    @http("GET", "/messages/conversations/<string:id>/messages")
    def list_messages(self, request, id):
        conversation_id = _conversation(id)
        args = query_args(request, schemas.MessagePageArgs())
        after = decode_cursor(args["cursor"], int)
        rows, reactions = conversations.message_page(
            self.db.session, request.user_id, conversation_id, args["limit"],
            before_seq=after[0] if after else None, before_id=args["before"], after_id=args["after"],
        )
        return page(rows, args["limit"], lambda row: (row.seq,),
                    lambda row: schemas.message_view(row, reactions[row.id]))

    @http("POST", "/messages/conversations/<string:id>/read")
    def mark_read(self, request, id):
        conversation_id = _conversation(id)
        data = json_body(request, schemas.ReadMark())
        conversations.mark_read(self.db.session, self.outbox, request.user_id, conversation_id, data["message_id"])

    # Messages and reactions -------------------------------------------------------

    @http("POST", "/messages")
    def send_message(self, request):
        data = json_body(request, schemas.MessageCreate())
        created, view = conversations.send_message(
            self.db.session, self.outbox, request.user_id, data["conversation_id"], data["body"], data["client_id"],
        )
        return (201 if created else 200), view

    @http("POST", "/messages/<string:id>/reactions")
    def add_reaction(self, request, id):
        message_id = _message(id)
        data = json_body(request, schemas.ReactionCreate())
        added = conversations.add_reaction(self.db.session, self.outbox, request.user_id, message_id, data["emoji"])
        return (201 if added else 200), {"message_id": message_id, "user_id": request.user_id, "emoji": data["emoji"]}

    @http("DELETE", "/messages/<string:id>/reactions/<path:emoji>")
    def remove_reaction(self, request, id, emoji):
        message_id = _message(id)
        emoji = schemas.load_emoji(emoji)
        conversations.remove_reaction(self.db.session, self.outbox, request.user_id, message_id, emoji)

    # Notifications ------------------------------------------------------------------

    @http("GET", "/notifications")
    def list_notifications(self, request):
        args = query_args(request, schemas.NotificationPageArgs())
        after = decode_cursor(args["cursor"], as_time, as_uuid)
        rows = notifications.notification_page(
            self.db.session, request.user_id, args["unread_only"] in ("true", "1"), args["limit"], after,
        )
        return page(rows, args["limit"], lambda row: (row.created_at, row.id), schemas.notification_view)

    @http("POST", "/notifications/read")
    def read_notifications(self, request):
        data = json_body(request, schemas.NotificationsRead())
        notifications.mark_read(self.db.session, request.user_id, data["ids"])

    # Events from other services, and our own -------------------------------------------

    @event_handler("auth", "user_followed")
    def on_user_followed(self, payload):
        notifications.on_user_followed(self.db.session, self.outbox, payload)

    @event_handler("auth", "user_deleted")
    def on_user_deleted(self, payload):
        notifications.on_user_deleted(self.db.session, payload)

    @event_handler("events", "participant_joined")
    def on_participant_joined(self, payload):
        notifications.on_participant_joined(self.db.session, self.outbox, payload)

    @event_handler("messages", "message_sent")
    def on_message_sent(self, payload):
        notifications.on_message_sent(self.db.session, self.outbox, self.presence, payload)

    # RPC: for realtime, the other services and operators (`nameko shell`) ------------

    @rpc
    def is_member(self, conversation_id, user_id):
        conversation_id, user_id = parse_uuid(conversation_id), parse_uuid(user_id)
        return bool(conversation_id and user_id) and conversations.is_member(self.db.session, conversation_id, user_id)

    @rpc
    def member_ids(self, conversation_id):
        """The member ids of a conversation ([] for none)."""
        conversation_id = parse_uuid(conversation_id)
        return conversations.member_ids(self.db.session, conversation_id) if conversation_id else []

    @rpc
    def unread_notifications(self, user_id):
        user_id = parse_uuid(user_id)
        return notifications.unread_count(self.db.session, user_id) if user_id else 0

    @rpc
    def counts(self):
        return conversations.counts(self.db.session)

    @rpc
    def outbox_backlog(self):
        """Events recorded but not yet published to RabbitMQ."""
        return self.outbox.pending_count()


def _conversation(value):
    return path_id(value, ConversationNotFound)


def _message(value):
    return path_id(value, MessageNotFound)
