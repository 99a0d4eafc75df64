"""Request schemas of the messages API, and the views it answers with."""
import re
from datetime import UTC

from marshmallow import Schema, ValidationError, fields, validate

from http_edge.fields import Text, UUIDString
from http_edge.pagination import BY_SEQUENCE, PageArgs, page_args
from services.shared.errors import InvalidInput

MAX_MEMBERS = 100
MAX_BODY_CHARS = 4000
MAX_EMOJI_CODEPOINTS = 16
MAX_IDS_PER_CALL = 100

# A reaction is a short run of emoji, stated as one regular expression that
# is both the rule and the API document's `pattern`, so what a generated client
# or a fuzzer takes as valid is exactly what is accepted. An emoji is a
# pictograph or symbol, with optional variation selector, skin tone and tag
# characters (subdivision flags such as England's), joined to more by zero-width
# joiners (families, professions); or a keycap (1️⃣). Flags are two regional
# indicators, which the pictograph block includes. The characters are written
# as themselves, not as escapes, so the pattern reads the same in any regex
# dialect (ECMA-262's included).
_PICTOGRAPH = (
    "\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u21ff\u231a-\u2328\u232b-\u23ff\u24c2"
    "\u25a0-\u27bf\u2900-\u297f\u2b00-\u2bff\u3030\u303d\u3297\u3299\U0001f000-\U0001faff"
)
_MODIFIER = "\ufe0e\ufe0f\U0001f3fb-\U0001f3ff"
_TAG = "\U000e0020-\U000e007f"
_ELEMENT = f"(?:[{_PICTOGRAPH}][{_MODIFIER}]*[{_TAG}]*|[0-9#*]\ufe0f?\u20e3)"
EMOJI_PATTERN = f"^(?:{_ELEMENT}(?:\u200d{_ELEMENT})*)+$"
_EMOJI = re.compile(EMOJI_PATTERN)


def check_emoji(value):
    """A reaction is one short emoji (or symbol), never text or control characters."""
    if not isinstance(value, str):
        raise ValidationError("Not a string.")
    if not 1 <= len(value) <= MAX_EMOJI_CODEPOINTS:
        raise ValidationError(f"Must be 1 to {MAX_EMOJI_CODEPOINTS} code points.")
    if not _EMOJI.fullmatch(value):
        # Also what the text policy refuses: the pattern has no room for
        # controls, bidi overrides or combining marks (a Zalgo thumbs-up).
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
    title = Text(min=1, max=120, load_default=None)


class MessageCreate(Schema):
    conversation_id = UUIDString(required=True)
    body = Text(required=True, min=1, max=MAX_BODY_CHARS, multiline=True)
    client_id = Text(min=1, max=64, load_default=None)


class MessagePageArgs(page_args(BY_SEQUENCE)):
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
