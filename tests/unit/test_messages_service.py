"""The messages service's rules and answers in isolation, with no I/O (what needs the
database is in tests/interface/test_messages.py)."""
import dataclasses
import io
import json
from datetime import UTC, datetime

import pytest
from nameko.testing.services import worker_factory
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from http_edge.answers import deleted_user
from services.messages import conversations, notifications
from services.messages.models import Message, Notification
from services.messages.schemas import (
    CONVERSATION_ANSWER,
    MESSAGE_ANSWER,
    NOTIFICATION_ANSWER,
    MessageCreate,
    check_emoji,
    load_emoji,
)
from services.messages.service import MessagesService
from services.shared.errors import InvalidInput

ANN = "11111111-1111-4111-8111-111111111111"
BOB = "22222222-2222-4222-8222-222222222222"
CAT = "33333333-3333-4333-8333-333333333333"
CONVERSATION = "44444444-4444-4444-8444-444444444444"
MESSAGE = "66666666-6666-4666-8666-666666666666"


def json_request(body, user_id=ANN, method="POST", handler=None):
    """A request as the handler's @http entrypoint hands it over: validated first."""
    raw = json.dumps(body).encode()
    builder = EnvironBuilder(method=method, input_stream=io.BytesIO(raw), content_type="application/json",
                             content_length=len(raw))
    request = Request(builder.get_environ())
    request.user_id = user_id
    if handler is not None:
        (entrypoint,) = handler.nameko_entrypoints
        entrypoint._validate(request)
    return request


@pytest.mark.parametrize("emoji", ["👍", "❤️", "🎉", "👨‍👩‍👧", "👍🏽", "1️⃣", "🇫🇷", "🏴󠁧󠁢󠁥󠁮󠁧󠁿", "☕", "★"])
def test_emoji_accepts_real_emoji(emoji):
    assert check_emoji(emoji) == emoji


@pytest.mark.parametrize("emoji", ["", "a", "ok", "1", "👍" * 17, "\x00", "👍\n", "\u200d", "\ufe0f",
                                   "<script>", " 👍", 7, None, ["👍"], "\u202e👍"])
def test_emoji_refuses_text_control_characters_and_long_strings(emoji):
    with pytest.raises(Exception) as failure:
        check_emoji(emoji)
    assert type(failure.value).__name__ == "ValidationError"


@pytest.mark.parametrize("body", [{"conversation_id": CONVERSATION, "body": ""},
                                  {"conversation_id": CONVERSATION, "body": "x" * 4001},
                                  {"conversation_id": "nope", "body": "hi"},
                                  {"conversation_id": CONVERSATION, "body": "hi", "client_id": ""},
                                  {"body": "hi"}])
def test_send_is_validated_before_any_worker_runs(body):
    with pytest.raises(InvalidInput):
        json_request(body, handler=MessagesService.send_message)


def test_bodies_keep_newlines_and_are_trimmed():
    loaded = MessageCreate().load({"conversation_id": CONVERSATION, "body": "  line one\nline two  "})
    assert loaded["body"] == "line one\nline two"


def test_reactions_are_validated_before_any_worker_runs():
    with pytest.raises(InvalidInput) as failure:
        json_request({"emoji": "ok"}, handler=MessagesService.add_reaction)
    assert "emoji" in failure.value.details


def test_an_emoji_in_a_path_is_checked_as_a_body_field_would_be():
    with pytest.raises(InvalidInput) as failure:
        load_emoji("abc")
    assert "emoji" in failure.value.details
    assert load_emoji("👍") == "👍"


def test_rpc_answers_nothing_for_malformed_ids_without_a_transaction():
    service = worker_factory(MessagesService)
    assert service.is_member("nope", ANN) is False
    assert service.member_ids(None) == []
    assert service.unread_notifications("1 OR 1=1") == 0
    assert not service.db.session.method_calls and not service.outbox.method_calls


def test_a_preview_is_cut_to_its_length_with_an_ellipsis():
    assert conversations.preview("short") == "short"
    cut = conversations.preview("x" * 500)
    assert len(cut) == conversations.PREVIEW_CHARS and cut.endswith("…")


SENT_AT = datetime(2026, 11, 23, 18, 0, 0, 123456, tzinfo=UTC)


def test_a_message_event_carries_the_message_as_the_api_answers_it():
    message = Message(id=MESSAGE, conversation_id=CONVERSATION, seq=7, sender_id=ANN, body="hi", client_id="c",
                      created_at=SENT_AT)
    values = conversations.message_values(message, [{"emoji": "👍", "count": 1, "user_ids": [BOB]}])
    answer = MESSAGE_ANSWER.dump(values)
    assert answer["created_at"] == "2026-11-23T18:00:00Z"  # to the second, as every answer
    assert dataclasses.asdict(conversations.message_summary(values)) == answer


def test_a_notification_event_carries_the_notification_as_the_api_answers_it():
    notification = Notification(id=MESSAGE, user_id=ANN, type="message", data={"count": 2}, created_at=SENT_AT,
                                read_at=None)
    answer = NOTIFICATION_ANSWER.dump(notification)
    assert answer == {"id": MESSAGE, "type": "message", "data": {"count": 2}, "created_at": "2026-11-23T18:00:00Z",
                      "read_at": None}
    assert dataclasses.asdict(notifications.notification_summary(notification)) == answer


def test_a_member_auth_no_longer_knows_is_shown_as_the_deleted_user():
    conversation = {
        "id": CONVERSATION, "kind": "group", "title": None, "member_ids": [ANN, BOB],
        "users": {ANN: {"id": ANN, "username": "ann", "display_name": "Ann", "avatar_url": None}},
        "created_at": SENT_AT, "last_activity_at": SENT_AT, "last_message": None, "unread_count": 0,
    }
    answer = CONVERSATION_ANSWER.dump(conversation)
    assert answer["members"] == [conversation["users"][ANN], deleted_user(BOB)]
    assert "member_ids" not in answer and "users" not in answer

