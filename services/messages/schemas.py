"""Request schemas of the messages API, and the answers it dumps (and documents) with."""
from marshmallow import Schema, ValidationError, fields, pre_dump, validate

from http_edge.answers import Time, UserSummary, user_or_deleted
from http_edge.fields import Text, UUIDString
from http_edge.pagination import BY_SEQUENCE, PageArgs, page_args
from services.messages.conversations import (
    CONVERSATION_KINDS,
    EMOJI_PATTERN,
    MAX_BODY_CHARS,
    MAX_CLIENT_ID_CHARS,
    MAX_EMOJI_CODEPOINTS,
    MAX_MEMBERS,
    MAX_TITLE_CHARS,
    is_emoji,
)
from services.messages.notifications import MAX_IDS_PER_CALL, NOTIFICATION_KINDS
from services.shared.errors import InvalidInput


def check_emoji(value):
    """A reaction is one short emoji (or symbol), never text or control characters
    (the rule: services.messages.conversations.is_emoji)."""
    if not isinstance(value, str):
        raise ValidationError("Not a string.")
    if not 1 <= len(value) <= MAX_EMOJI_CODEPOINTS:
        raise ValidationError(f"Must be 1 to {MAX_EMOJI_CODEPOINTS} code points.")
    if not is_emoji(value):
        raise ValidationError("Must be an emoji.")
    return value


class Emoji(fields.String):
    def __init__(self, **kwargs):
        metadata = {"pattern": EMOJI_PATTERN, "minLength": 1, "maxLength": MAX_EMOJI_CODEPOINTS}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return check_emoji(value)


class ConversationCreate(Schema):
    member_ids = fields.List(UUIDString(), required=True, validate=validate.Length(min=1, max=MAX_MEMBERS))
    title = Text(min=1, max=MAX_TITLE_CHARS, load_default=None)


class MessageCreate(Schema):
    conversation_id = UUIDString(required=True)
    body = Text(required=True, min=1, max=MAX_BODY_CHARS, multiline=True)
    client_id = Text(min=1, max=MAX_CLIENT_ID_CHARS, load_default=None)


# page_args builds the class at run time: it has no static type to check against.
class MessagePageArgs(page_args(BY_SEQUENCE)):  # type: ignore[misc]
    # A message id: only messages older (`before`) or newer (`after`) than it.
    # `after` is how a client that was offline catches up.
    before = UUIDString(load_default=None)
    after = UUIDString(load_default=None)


class ReactionCreate(Schema):
    emoji = Emoji(required=True)


class ReadMark(Schema):
    message_id = UUIDString(required=True)


class NotificationPageArgs(PageArgs):
    unread_only = fields.String(load_default="false", validate=validate.OneOf(["true", "false", "1", "0"]))


class NotificationsRead(Schema):
    ids = fields.List(UUIDString(), load_default=None, validate=validate.Length(min=1, max=MAX_IDS_PER_CALL))


def load_emoji(value):
    """An emoji from a path segment, validated as a body field would be."""
    try:
        return check_emoji(value)
    except ValidationError as exc:
        raise InvalidInput(details={"emoji": exc.messages}) from None


# Answers (what the API document says each call returns) --------------------------

class ReactionSummary(Schema):
    emoji = fields.String(required=True)
    count = fields.Integer(required=True)
    user_ids = fields.List(fields.UUID(), required=True)


class MessageAnswer(Schema):
    id = fields.UUID(required=True)
    conversation_id = fields.UUID(required=True)
    seq = fields.Integer(required=True, metadata={
        "description": "Increases with every message the server stores, in the order stored "
        "(shared by all conversations, so it has gaps): orders and dedupes messages."})
    sender_id = fields.UUID(required=True)
    body = fields.String(required=True, allow_none=True, metadata={
        "description": "null once the message was removed (deleted)."})
    deleted = fields.Boolean(required=True, metadata={
        "description": "True for a removed message: a placeholder that keeps its place, with no body."})
    client_id = fields.String(required=True, allow_none=True)
    created_at = Time(required=True)
    reactions = fields.List(fields.Nested(ReactionSummary), required=True)


class ConversationAnswer(Schema):
    id = fields.UUID(required=True)
    kind = fields.String(required=True, metadata={"enum": list(CONVERSATION_KINDS)})
    title = fields.String(required=True, allow_none=True)
    members = fields.List(fields.Nested(UserSummary), required=True)
    created_at = Time(required=True)
    last_activity_at = Time(required=True)
    last_message = fields.Nested(MessageAnswer, required=True, allow_none=True)
    unread_count = fields.Integer(required=True)

    @pre_dump
    def _members(self, conversation, **kwargs):
        # The domain names the members by id beside the summaries auth has of
        # them; a member whose account is gone has none, and shows as deleted.
        users = conversation["users"]
        return dict(conversation, members=[user_or_deleted(users, user_id) for user_id in conversation["member_ids"]])


class ReactionAnswer(Schema):
    message_id = fields.UUID(required=True)
    user_id = fields.UUID(required=True)
    emoji = fields.String(required=True)


class NotificationAnswer(Schema):
    id = fields.UUID(required=True)
    type = fields.String(required=True, metadata={"enum": list(NOTIFICATION_KINDS)})
    data = fields.Dict(required=True)
    created_at = Time(required=True)
    read_at = Time(required=True, allow_none=True)



# Built once: each call dumps its answers with these.
MESSAGE_ANSWER = MessageAnswer()
CONVERSATION_ANSWER = ConversationAnswer()
REACTION_ANSWER = ReactionAnswer()
NOTIFICATION_ANSWER = NotificationAnswer()
