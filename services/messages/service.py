"""The messages service: conversations, messages, reactions, read state and notifications."""

from http_edge import health
from http_edge.entrypoint import http
from http_edge.pagination import BY_SEQUENCE, BY_TIME, PageArgs, page, page_of
from http_edge.validation import path_id
from services.messages import conversations, notifications, schemas
from services.messages.dependencies import PresenceProvider
from services.messages.exceptions import ConversationNotFound, MessageNotFound
from services.messages.models import Base
from services.messages.models import Outbox as OutboxTable
from services.shared import outbox as shared_outbox
from services.shared.database import Database
from services.shared.events import durable_handler
from services.shared.ids import parse_uuid
from services.shared.observability import Observability
from services.shared.outbox import Outbox
from services.shared.redis import Redis
from services.shared.rpc import BoundedRpcProxy, rpc


# The mixin is reached through its module: `nameko run` would take a bare
# imported class with entrypoints for a service of its own.
class MessagesService(health.HealthEndpoints, shared_outbox.OutboxOperations):
    name = "messages"

    db = Database(Base)
    outbox = Outbox(OutboxTable)
    presence = PresenceProvider()
    redis = Redis()
    broker = health.BrokerProbe()
    observability = Observability()
    auth = BoundedRpcProxy("auth")

    def readiness_probes(self):
        return {"database": health.database_probe(self.db), "broker": self.broker, "redis": self.redis.ping}

    # Conversations ---------------------------------------------------------------

    @http("POST", "/messages/conversations", body=schemas.ConversationCreate,
          responses={201: schemas.ConversationAnswer, 200: schemas.ConversationAnswer})
    def create_conversation(self, request):
        """Start a conversation; a 1:1 that exists already is answered as it is (200)."""
        data = request.body
        created, view = conversations.create_conversation(
            self.db.session, self.outbox, self.auth.get_users, request.user_id, data["member_ids"], data["title"],
        )
        return (201 if created else 200), view

    @http("GET", "/messages/conversations", query=PageArgs, responses={200: page_of(schemas.ConversationAnswer)})
    def list_conversations(self, request):
        """My conversations with members, last message and unread count, latest activity first."""
        args = request.query
        after = BY_TIME.decode(args["cursor"])
        rows, views = conversations.conversation_page(
            self.db.session, self.auth.get_users, request.user_id, args["limit"], after,
        )
        return page(rows, args["limit"], lambda row: (row.last_activity_at, row.id), lambda row: views[row.id])

    @http("GET", "/messages/conversations/<string:id>", responses={200: schemas.ConversationAnswer})
    def get_conversation(self, request, id):
        """One of my conversations; 404 for anyone who is not a member."""
        return conversations.get_conversation(self.db.session, self.auth.get_users, request.user_id, _conversation(id))

    @http("GET", "/messages/conversations/<string:id>/messages", query=schemas.MessagePageArgs,
          responses={200: page_of(schemas.MessageAnswer)})
    def list_messages(self, request, id):
        """Messages newest first; `after` (a message id) catches up after being offline."""
        conversation_id = _conversation(id)
        args = request.query
        after = BY_SEQUENCE.decode(args["cursor"])
        rows, reactions = conversations.message_page(
            self.db.session, request.user_id, conversation_id, args["limit"],
            before_seq=after[0] if after else None, before_id=args["before"], after_id=args["after"],
        )
        return page(rows, args["limit"], lambda row: (row.seq,),
                    lambda row: schemas.message_view(row, reactions[row.id]), BY_SEQUENCE)

    @http("POST", "/messages/conversations/<string:id>/read", body=schemas.ReadMark, responses={204: None})
    def mark_read(self, request, id):
        """Move my read mark forward to a message of the conversation."""
        conversation_id = _conversation(id)
        data = request.body
        conversations.mark_read(self.db.session, self.outbox, request.user_id, conversation_id, data["message_id"])

    # Messages and reactions -------------------------------------------------------

    @http("POST", "/messages", body=schemas.MessageCreate,
          responses={201: schemas.MessageAnswer, 200: schemas.MessageAnswer}, errors=(404, 409))
    def send_message(self, request):
        """Send a message; the same client_id again answers the same message (200)."""
        data = request.body
        created, view = conversations.send_message(
            self.db.session, self.outbox, request.user_id, data["conversation_id"], data["body"], data["client_id"],
        )
        return (201 if created else 200), view

    @http("POST", "/messages/<string:id>/reactions", body=schemas.ReactionCreate,
          responses={201: schemas.ReactionAnswer, 200: schemas.ReactionAnswer})
    def add_reaction(self, request, id):
        """React with an emoji (one of each per user; again answers 200)."""
        message_id = _message(id)
        data = request.body
        added = conversations.add_reaction(self.db.session, self.outbox, request.user_id, message_id, data["emoji"])
        return (201 if added else 200), {"message_id": message_id, "user_id": request.user_id, "emoji": data["emoji"]}

    @http("DELETE", "/messages/<string:id>/reactions/<path:emoji>", responses={204: None}, errors=(422,),
          path={"emoji": schemas.Emoji()})
    def remove_reaction(self, request, id, emoji):
        """Take my reaction back (idempotent)."""
        message_id = _message(id)
        emoji = schemas.load_emoji(emoji)
        conversations.remove_reaction(self.db.session, self.outbox, request.user_id, message_id, emoji)

    # Notifications ------------------------------------------------------------------

    @http("GET", "/notifications", query=schemas.NotificationPageArgs,
          responses={200: page_of(schemas.NotificationAnswer)})
    def list_notifications(self, request):
        """My notifications, newest first."""
        args = request.query
        after = BY_TIME.decode(args["cursor"])
        rows = notifications.notification_page(
            self.db.session, request.user_id, args["unread_only"] in ("true", "1"), args["limit"], after,
        )
        return page(rows, args["limit"], lambda row: (row.created_at, row.id), schemas.notification_view)

    @http("POST", "/notifications/read", body=schemas.NotificationsRead, responses={204: None})
    def read_notifications(self, request):
        """Mark my notifications read: those in ids, or all of them."""
        data = request.body
        notifications.mark_read(self.db.session, request.user_id, data["ids"])

    # Events from other services, and our own -------------------------------------------
    # Requeued when the database or Redis is down (services.shared.events); each
    # claims its event id in the transaction of its effect, so a redelivery is harmless.

    @durable_handler("auth", "user_followed")
    def on_user_followed(self, payload):
        notifications.on_user_followed(self.db.session, self.outbox, payload)

    @durable_handler("auth", "user_deleted")
    def on_user_deleted(self, payload):
        notifications.on_user_deleted(self.db.session, payload)

    @durable_handler("events", "participant_joined")
    def on_participant_joined(self, payload):
        notifications.on_participant_joined(self.db.session, self.outbox, payload)

    @durable_handler("messages", "message_sent")
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


def _conversation(value):
    return path_id(value, ConversationNotFound)


def _message(value):
    return path_id(value, MessageNotFound)
