"""The messages service's entrypoints and rules in isolation (Nameko's worker_factory)."""
import io
import json
from datetime import UTC, datetime
from unittest import mock

import pytest
from nameko.testing.services import worker_factory
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.messages import notifications
from services.messages.exceptions import ConversationNotFound, MessageNotFound, NoOtherMembers, UnknownMembers
from services.messages.schemas import MessageCreate, check_emoji
from services.messages.service import MessagesService
from services.shared import clock
from services.shared.errors import InvalidInput

ANN = "11111111-1111-4111-8111-111111111111"
BOB = "22222222-2222-4222-8222-222222222222"
CAT = "33333333-3333-4333-8333-333333333333"
CONVERSATION = "44444444-4444-4444-8444-444444444444"


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


def test_a_conversation_with_only_yourself_is_refused_without_asking_auth():
    service = worker_factory(MessagesService)
    with pytest.raises(NoOtherMembers):
        service.create_conversation(json_request({"member_ids": [ANN]}, handler=MessagesService.create_conversation))
    assert not service.auth.get_users.called


def test_unknown_members_are_named_and_nothing_is_written():
    service = worker_factory(MessagesService)
    service.auth.get_users.return_value = [{"id": ANN}, {"id": BOB}]
    with pytest.raises(UnknownMembers) as failure:
        service.create_conversation(json_request({"member_ids": [BOB, CAT]},
                                                 handler=MessagesService.create_conversation))
    assert failure.value.details == {"member_ids": [CAT]}
    service.auth.get_users.assert_called_once_with([ANN, BOB, CAT])  # one batched call
    assert not service.db.session.add_all.called and not service.db.session.commit.called


def test_ids_that_are_not_uuids_name_nothing():
    service = worker_factory(MessagesService)
    with pytest.raises(ConversationNotFound):
        service.get_conversation(json_request({}, method="GET"), "1 OR 1=1")
    with pytest.raises(MessageNotFound):
        service.add_reaction(json_request({"emoji": "👍"}, handler=MessagesService.add_reaction), "../etc")


def test_reactions_are_validated_before_any_worker_runs():
    with pytest.raises(InvalidInput) as failure:
        json_request({"emoji": "ok"}, handler=MessagesService.add_reaction)
    assert "emoji" in failure.value.details


def test_removing_a_reaction_checks_the_emoji_in_the_path():
    service = worker_factory(MessagesService)
    with pytest.raises(InvalidInput) as failure:
        service.remove_reaction(json_request({}, method="DELETE"), CONVERSATION, "abc")
    assert "emoji" in failure.value.details
    assert not service.db.session.method_calls


def test_rpc_answers_nothing_for_malformed_ids():
    service = worker_factory(MessagesService)
    assert service.is_member("nope", ANN) is False
    assert service.member_ids(None) == []
    assert not service.db.session.method_calls


def _claimed_session():
    session = mock.MagicMock()
    session.execute.return_value.first.return_value = ("claimed",)
    return session


def test_a_message_notifies_only_recipients_without_a_socket():
    session, outbox, presence = _claimed_session(), mock.Mock(), mock.Mock()
    presence.online_among.return_value = {BOB}
    session.execute.return_value.scalars.return_value.first.return_value = None  # no unread one to update
    payload = {"event_id": "55555555-5555-4555-8555-555555555555", "recipient_ids": [ANN, BOB, CAT],
               "message": {"id": "m", "conversation_id": CONVERSATION, "sender_id": ANN, "body": "x" * 500}}
    with mock.patch.object(clock, "now", return_value=datetime(2026, 1, 1, tzinfo=UTC)):
        notifications.on_message_sent(session, outbox, presence, payload)
    presence.online_among.assert_called_once_with([BOB, CAT])  # never the sender
    (notified,) = [call.args[0] for call in session.add.call_args_list]
    assert notified.user_id == CAT and notified.type == "message"
    assert len(notified.data["preview"]) == 140 and notified.data["count"] == 1
    outbox.add.assert_called_once()
    assert outbox.add.call_args.args[2]["recipient_ids"] == [CAT]
    session.commit.assert_called_once()


def test_an_event_seen_before_changes_nothing():
    session, outbox = mock.MagicMock(), mock.Mock()
    session.execute.return_value.first.return_value = None  # the claim found it already processed
    notifications.on_user_followed(session, outbox, {"event_id": CONVERSATION, "follower_id": ANN,
                                                     "followee_id": BOB})
    assert not session.add.called and not outbox.add.called
    session.rollback.assert_called_once()


def test_an_event_without_an_id_is_not_handled():
    session, outbox = mock.MagicMock(), mock.Mock()
    notifications.on_user_followed(session, outbox, {"follower_id": ANN, "followee_id": BOB})
    assert not session.execute.called and not outbox.add.called


def test_joining_your_own_event_notifies_nobody():
    session, outbox = _claimed_session(), mock.Mock()
    notifications.on_participant_joined(session, outbox, {
        "event_id": CONVERSATION, "organizer_id": ANN, "user_id": ANN, "event": {"id": BOB, "title": "T"}})
    assert not session.add.called and not outbox.add.called
