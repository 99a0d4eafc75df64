"""Request schemas of the messages API, and the views it answers with."""
import unicodedata
from datetime import UTC

from marshmallow import Schema, ValidationError, fields, validate

from http_edge.fields import Text, UUIDString
from http_edge.pagination import PageArgs
from services.shared import text
from services.shared.errors import InvalidInput

MAX_MEMBERS = 100
MAX_BODY_CHARS = 4000
MAX_EMOJI_CODEPOINTS = 16
MAX_IDS_PER_CALL = 100

# What may sit beside a pictograph inside one emoji: variation selectors and
# skin-tone modifiers, zero-width joiners (family, profession sequences), the
# keycap mark, and tag characters (subdivision flags such as England's).
_ZWJ = "\u200d"
_KEYCAP = "\u20e3"
_KEYCAP_BASES = set("0123456789#*")


def _is_tag(char):
    return 0xE0020 <= ord(char) <= 0xE007F


def _is_emoji_part(char):
    category = unicodedata.category(char)
    return (
        category == "So"  # pictographs, dingbats, regional indicators
        or category in ("Mn", "Me", "Sk")  # variation selectors, keycap, skin tones
        or char == _ZWJ
        or _is_tag(char)
    )


def check_emoji(value):
    """A reaction is one short emoji (or symbol), never text or control characters."""
    if not isinstance(value, str):
        raise ValidationError("Not a string.")
    value = unicodedata.normalize("NFC", value)
    if not 1 <= len(value) <= MAX_EMOJI_CODEPOINTS:
        raise ValidationError(f"Must be 1 to {MAX_EMOJI_CODEPOINTS} code points.")
    keycap = _KEYCAP in value
    for char in value:
        if not (_is_emoji_part(char) or (keycap and char in _KEYCAP_BASES)):
            raise ValidationError("Must be an emoji.")
    if not any(unicodedata.category(char) == "So" for char in value) and not keycap:
        raise ValidationError("Must be an emoji.")
    try:  # the policy of all text too: a thumbs-up under 30 combining marks is Zalgo
        return text.check(value)
    except text.Refused as exc:
        raise ValidationError(str(exc)) from None


class Emoji(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        return check_emoji(value)


class ConversationCreate(Schema):
    member_ids = fields.List(UUIDString(), required=True, validate=validate.Length(min=1, max=MAX_MEMBERS))
    title = Text(min=1, max=120, load_default=None)


class MessageCreate(Schema):
    conversation_id = UUIDString(required=True)
    body = Text(required=True, min=1, max=MAX_BODY_CHARS, multiline=True)
    client_id = Text(min=1, max=64, load_default=None)


class MessagePageArgs(PageArgs):
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


def iso(moment):
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment else None


def message_view(message, reactions=None):
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "sender_id": message.sender_id,
        "body": message.body,
        "client_id": message.client_id,
        "created_at": iso(message.created_at),
        "reactions": reactions or [],
    }


def notification_view(notification):
    return {
        "id": notification.id,
        "type": notification.type,
        "data": notification.data,
        "created_at": iso(notification.created_at),
        "read_at": iso(notification.read_at),
    }


def load_emoji(value):
    """An emoji from a path segment, validated as a body field would be."""
    try:
        return check_emoji(value)
    except ValidationError as exc:
        raise InvalidInput(details={"emoji": exc.messages}) from None


# Answers (what the API document says each call returns) --------------------------

class MemberSummary(Schema):
    id = fields.UUID(required=True)
    username = fields.String(required=True, allow_none=True, metadata={"description": "null for a deleted user"})
    display_name = fields.String(required=True, allow_none=True)
    avatar_url = fields.String(required=True, allow_none=True)


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
    body = fields.String(required=True)
    client_id = fields.String(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)
    reactions = fields.List(fields.Nested(ReactionSummary), required=True)


class ConversationAnswer(Schema):
    id = fields.UUID(required=True)
    kind = fields.String(required=True, metadata={"enum": ["direct", "group"]})
    title = fields.String(required=True, allow_none=True)
    members = fields.List(fields.Nested(MemberSummary), required=True)
    created_at = fields.DateTime(required=True)
    last_activity_at = fields.DateTime(required=True)
    last_message = fields.Nested(MessageAnswer, required=True, allow_none=True)
    unread_count = fields.Integer(required=True)


class ReactionAnswer(Schema):
    message_id = fields.UUID(required=True)
    user_id = fields.UUID(required=True)
    emoji = fields.String(required=True)


class NotificationAnswer(Schema):
    id = fields.UUID(required=True)
    type = fields.String(required=True, metadata={
        "enum": ["new_follower", "event_participant_joined", "message"]})
    data = fields.Dict(required=True)
    created_at = fields.DateTime(required=True)
    read_at = fields.DateTime(required=True, allow_none=True)


def deleted_member(user_id):
    """How a member whose account is gone is shown."""
    return {"id": user_id, "username": None, "display_name": None, "avatar_url": None}
