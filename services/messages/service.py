"""The messages service: conversations, messages, reactions, read state and notifications.

Each entrypoint translates its request or event into plain arguments, runs one
domain call (services.messages.conversations, .notifications) in its unit of
work, and dumps the answer with its schema (services.messages.schemas), inside
the block: the commit expires the rows an answer is read from.
"""
from http_edge import health
from http_edge.entrypoint import http
from http_edge.pagination import BY_SEQUENCE, BY_TIME, PageArgs, page, page_of
from services.messages import conversations, export, notifications, safety, schemas
from services.messages.dependencies import PresenceProvider
from services.messages.exceptions import ConversationNotFound, MessageNotFound
from services.messages.models import Base, ProcessedEvent
from services.messages.models import Outbox as OutboxTable
from services.shared import contracts, relation_replica
from services.shared import outbox as shared_outbox
from services.shared.database import Database
from services.shared.errors import InvalidInput
from services.shared.events import consumes
from services.shared.ids import parse_uuid
from services.shared.observability import Observability
from services.shared.outbox import Outbox
from services.shared.redis import Redis
from services.shared.rpc import BoundedRpcProxy, rpc


# The mixins are reached through their module: `nameko run` would take a bare
# imported class with entrypoints for a service of its own.
class MessagesService(health.HealthEndpoints, shared_outbox.OutboxOperations, shared_outbox.UnitsOfWork,
                      relation_replica.RelationReplicaConsumers):
    name = "messages"
    # Auth's blocks and mutes, replicated here (relation_replica).
    relation_changes = safety

    db = Database(Base)
    outbox = Outbox(OutboxTable, ProcessedEvent)
    presence = PresenceProvider()
    redis = Redis()
    broker = health.BrokerProbe()
    observability = Observability()
    auth = BoundedRpcProxy("auth")

    def readiness_probes(self):
        return {"database": health.database_probe(self.db), "broker": self.broker, "redis": self.redis.ping}

    # Conversations ---------------------------------------------------------------

    @http("POST", "/messages/conversations", body=schemas.ConversationCreate,
          responses={201: schemas.ConversationAnswer, 200: schemas.ConversationAnswer}, errors=(403, 422))
    def create_conversation(self, request):
        """Start a conversation; a 1:1 that exists already is answered as it is (200).
        A group refuses (403) members whose group_invites setting does not let me add them;
        403 BLOCKED for a 1:1 with someone you block or who blocks you."""
        data = request.body
        with self.uow as uow:
            created, conversation = conversations.create_conversation(
                uow, self.auth.get_users, request.user_id, data["member_ids"], data["title"],
                invite_refusals=self.auth.group_invite_refusals,
            )
            return (201 if created else 200), schemas.CONVERSATION_ANSWER.dump(conversation)

    @http("GET", "/messages/conversations", query=PageArgs, responses={200: page_of(schemas.ConversationAnswer)})
    def list_conversations(self, request):
        """My conversations with members, last message and unread count, latest activity first."""
        args = request.query
        with self.uow as uow:
            rows, details = conversations.conversation_page(
                uow, self.auth.get_users, request.user_id, args["limit"], BY_TIME.decode(args["cursor"]),
            )
            return page(rows, args["limit"], lambda row: (row.last_activity_at, row.id),
                        lambda row: schemas.CONVERSATION_ANSWER.dump(details[row.id]))

    @http("GET", "/messages/conversations/<uuid:id>", responses={200: schemas.ConversationAnswer},
          not_found=ConversationNotFound)
    def get_conversation(self, request, id):
        """One of my conversations; 404 for anyone who is not a member."""
        with self.uow as uow:
            conversation = conversations.get_conversation(uow, self.auth.get_users, request.user_id, id)
            return schemas.CONVERSATION_ANSWER.dump(conversation)

    @http("GET", "/messages/conversations/<uuid:id>/messages", query=schemas.MessagePageArgs,
          responses={200: page_of(schemas.MessageAnswer)}, not_found=ConversationNotFound)
    def list_messages(self, request, id):
        """Messages newest first; `after` (a message id) catches up after being offline."""
        args = request.query
        cursor = BY_SEQUENCE.decode(args["cursor"])
        with self.uow as uow:
            rows, messages = conversations.message_page(
                uow, request.user_id, id, args["limit"],
                before_seq=cursor[0] if cursor else None, before_id=args["before"], after_id=args["after"],
            )
            return page(rows, args["limit"], lambda row: (row.seq,),
                        lambda row: schemas.MESSAGE_ANSWER.dump(messages[row.id]), BY_SEQUENCE)

    @http("POST", "/messages/conversations/<uuid:id>/read", body=schemas.ReadMark, responses={204: None},
          not_found=ConversationNotFound)
    def mark_read(self, request, id):
        """Move my read mark forward to a message of the conversation."""
        with self.uow as uow:
            conversations.mark_read(uow, request.user_id, id, request.body["message_id"])

    # Messages and reactions -------------------------------------------------------

    @http("POST", "/messages", body=schemas.MessageCreate,
          responses={201: schemas.MessageAnswer, 200: schemas.MessageAnswer}, errors=(403, 404, 409))
    def send_message(self, request):
        """Send a message; the same client_id again answers the same message
        (200); 403 BLOCKED into a 1:1 where either member blocks the other."""
        data = request.body
        with self.uow as uow:
            created, message = conversations.send_message(
                uow, request.user_id, data["conversation_id"], data["body"], data["client_id"],
            )
            return (201 if created else 200), schemas.MESSAGE_ANSWER.dump(message)

    @http("POST", "/messages/<uuid:id>/reactions", body=schemas.ReactionCreate,
          responses={201: schemas.ReactionAnswer, 200: schemas.ReactionAnswer}, not_found=MessageNotFound)
    def add_reaction(self, request, id):
        """React with an emoji (one of each per user; again answers 200)."""
        emoji = request.body["emoji"]
        with self.uow as uow:
            added = conversations.add_reaction(uow, request.user_id, id, emoji)
        return (201 if added else 200), schemas.REACTION_ANSWER.dump(
            {"message_id": id, "user_id": request.user_id, "emoji": emoji})

    @http("DELETE", "/messages/<uuid:id>/reactions/<path:emoji>", responses={204: None}, errors=(422,),
          path={"emoji": schemas.Emoji()}, not_found=MessageNotFound)
    def remove_reaction(self, request, id, emoji):
        """Take my reaction back (idempotent)."""
        emoji = schemas.load_emoji(emoji)
        with self.uow as uow:
            conversations.remove_reaction(uow, request.user_id, id, emoji)

    # Notifications ------------------------------------------------------------------

    @http("GET", "/notifications", query=schemas.NotificationPageArgs,
          responses={200: page_of(schemas.NotificationAnswer)})
    def list_notifications(self, request):
        """My notifications, newest first."""
        args = request.query
        with self.uow as uow:
            rows = notifications.notification_page(
                uow, request.user_id, args["unread_only"] in ("true", "1"), args["limit"],
                BY_TIME.decode(args["cursor"]),
            )
            return page(rows, args["limit"], lambda row: (row.created_at, row.id), schemas.NOTIFICATION_ANSWER.dump)

    @http("POST", "/notifications/read", body=schemas.NotificationsRead, responses={204: None})
    def read_notifications(self, request):
        """Mark my notifications read: those in ids, or all of them."""
        with self.uow as uow:
            notifications.mark_read(uow, request.user_id, request.body["ids"])

    # Events from other services, and our own -------------------------------------------
    # Requeued when the database or Redis is down (services.shared.events); each
    # claims its event in the unit of work of its effect, so a redelivery is harmless.

    @consumes(contracts.UserFollowed)
    def on_user_followed(self, event):
        with self.uow as uow:
            notifications.on_user_followed(uow, event)

    @consumes(contracts.FollowRequested)
    def on_follow_requested(self, event):
        with self.uow as uow:
            notifications.on_follow_requested(uow, event)

    @consumes(contracts.UserDeleted)
    def on_user_deleted(self, event):
        with self.uow as uow:
            notifications.on_user_deleted(uow, event)

    @consumes(contracts.ContentRemoved)
    def on_content_removed(self, event):
        with self.uow as uow:
            notifications.on_content_removed(uow, event)

    @consumes(contracts.ParticipantJoined)
    def on_participant_joined(self, event):
        with self.uow as uow:
            notifications.on_participant_joined(uow, event)

    @consumes(contracts.EventCancelled)
    def on_event_cancelled(self, event):
        with self.uow as uow:
            notifications.on_event_cancelled(uow, event)

    @consumes(contracts.MessageSent)
    def on_message_sent(self, event):
        with self.uow as uow:
            notifications.on_message_sent(uow, self.presence, event)

    # RPC: for realtime, the other services and operators (`nameko shell`) ------------

    @rpc
    def is_member(self, conversation_id, user_id):
        conversation_id, user_id = parse_uuid(conversation_id), parse_uuid(user_id)
        if not (conversation_id and user_id):
            return False
        with self.uow as uow:
            return conversations.is_member(uow, conversation_id, user_id)

    @rpc
    def member_ids(self, conversation_id):
        """The members who hear each other live in a conversation (realtime's
        typing relay): [] for none, and for a 1:1 across a block."""
        conversation_id = parse_uuid(conversation_id)
        if not conversation_id:
            return []
        with self.uow as uow:
            return conversations.live_member_ids(uow, conversation_id)

    @rpc
    def report_snapshot(self, viewer_id, message_id):
        """What viewer_id reports of a message ({author_id, text, conversation_id}),
        or None unless they are a member of its conversation (auth's reports)."""
        viewer_id, message_id = parse_uuid(viewer_id), parse_uuid(message_id)
        if not (viewer_id and message_id):
            return None
        with self.uow as uow:
            return conversations.report_snapshot(uow, viewer_id, message_id)

    @rpc
    def unread_notifications(self, user_id):
        user_id = parse_uuid(user_id)
        if not user_id:
            return 0
        with self.uow as uow:
            return notifications.unread_count(uow, user_id)

    @rpc
    def export_user(self, user_id):
        """The account's messages, conversations and notifications for its data export."""
        user_id = parse_uuid(user_id)
        if user_id is None:
            raise InvalidInput(details={"user_id": ["Not a UUID."]})
        with self.uow as uow:
            return export.export_user(uow, user_id)

    @rpc
    def counts(self):
        with self.uow as uow:
            return conversations.counts(uow)
