"""The messages service in a Nameko container against the real PostgreSQL,
RabbitMQ and Redis, with auth replaced: its answers, the domain events it
records in its outbox, and the notifications it makes of the events it hears."""
import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_hook
from sqlalchemy import create_engine, text

from http_edge.answers import deleted_user
from services.messages.service import MessagesService
from services.shared import contracts
from services.shared.presence import Presence
from services.shared.redis import redis_from_config
from tests.conftest import eventually

SECOND = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def summary(user_id):
    return {"id": user_id, "username": "u" + user_id[:8], "display_name": "User " + user_id[:4], "avatar_url": None}


class Messages:
    """The running service, auth answering for the users it was told of."""

    def __init__(self, running):
        self.running = running
        self.api = running.api
        self.known = set()
        running.peers["auth"].get_users.side_effect = lambda ids: [summary(i) for i in ids if i in self.known]
        # Everyone lets anyone add them to a group unless a test says otherwise.
        running.peers["auth"].group_invite_refusals.return_value = []

    def user(self):
        credentials = self.running.user()
        self.known.add(credentials["id"])
        return credentials

    def conversation(self, owner, *others, title=None):
        response = self.api.post("/messages/conversations", user=owner,
                                 json={"member_ids": [other["id"] for other in others], "title": title})
        assert response.status_code in (200, 201), response.text
        return response.json()

    def send(self, sender, conversation, body="hello", **extra):
        response = self.api.post("/messages", user=sender,
                                 json={"conversation_id": conversation["id"], "body": body, **extra})
        assert response.status_code in (200, 201), response.text
        return response.json()

    def notifications(self, user):
        response = self.api.get("/notifications", user=user)
        assert response.status_code == 200, response.text
        return response.json()["items"]

    def handle(self, method_name, event):
        with entrypoint_hook(self.running.container, method_name) as handler:
            return handler(event)


@pytest.fixture
def messages(run_service):
    return Messages(run_service(MessagesService, "auth"))


@pytest.fixture(scope="module")
def database(interface_config):
    engine = create_engine(interface_config["DB_URIS"]["messages:Base"])
    yield engine
    engine.dispose()


def recorded(database, event_type, **about):
    """The payloads of the outbox rows of event_type whose payload has the given values."""
    with database.connect() as connection:
        payloads = connection.execute(
            text("SELECT payload FROM messages.outbox WHERE event_type = :type ORDER BY id"), {"type": event_type},
        ).scalars().all()
    return [payload for payload in payloads if all(payload.get(key) == value for key, value in about.items())]


def typed(contract, payload):
    """The payload as its contract reads it: what every consumer is handed."""
    assert payload[contracts.ENVELOPE_ID]
    return contract.from_payload(payload)


# Conversations --------------------------------------------------------------------

def test_a_direct_conversation_is_created_once_and_answered_again_with_200(messages):
    ann, bob = messages.user(), messages.user()
    first = messages.api.post("/messages/conversations", user=ann, json={"member_ids": [bob["id"]]})
    assert first.status_code == 201, first.text
    conversation = first.json()
    assert conversation["kind"] == "direct" and conversation["unread_count"] == 0
    # Members joined in one transaction: in the order of their ids.
    assert conversation["members"] == [summary(user_id) for user_id in sorted([ann["id"], bob["id"]])]
    assert SECOND.match(conversation["created_at"]) and SECOND.match(conversation["last_activity_at"])
    for opener, other in [(ann, bob), (bob, ann)]:
        again = messages.api.post("/messages/conversations", user=opener, json={"member_ids": [other["id"]]})
        assert again.status_code == 200 and again.json()["id"] == conversation["id"]


def test_both_people_opening_their_direct_conversation_at_once_get_the_same_one(messages):
    ann, bob = messages.user(), messages.user()

    def open_from(pair):
        opener, other = pair
        return messages.api.post("/messages/conversations", user=opener, json={"member_ids": [other["id"]]})

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(open_from, [(ann, bob), (bob, ann)] * 3))
    assert sorted(answer.status_code for answer in answers) == [200] * 5 + [201]
    assert len({answer.json()["id"] for answer in answers}) == 1


def test_a_conversation_needs_another_member_and_auth_is_not_asked(messages):
    ann = messages.user()
    response = messages.api.post("/messages/conversations", user=ann, json={"member_ids": [ann["id"]]})
    assert response.status_code == 422 and response.json()["error"]["code"] == "NO_OTHER_MEMBERS"
    assert not messages.running.peers["auth"].get_users.called


def test_unknown_members_are_named_in_one_call_to_auth_and_nothing_is_written(messages, database):
    ann, bob, stranger = messages.user(), messages.user(), str(uuid.uuid4())
    response = messages.api.post("/messages/conversations", user=ann, json={"member_ids": [bob["id"], stranger]})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "UNKNOWN_MEMBERS"
    assert response.json()["error"]["details"] == {"member_ids": [stranger]}
    messages.running.peers["auth"].get_users.assert_called_once_with([ann["id"], bob["id"], stranger])
    with database.connect() as connection:
        assert not connection.scalar(text("SELECT count(*) FROM messages.members WHERE user_id = :id"),
                                     {"id": ann["id"]})


def test_a_group_is_refused_whole_when_auth_says_someone_refuses_and_a_1_to_1_never_asks(messages, database):
    ann, bob, cat = messages.user(), messages.user(), messages.user()
    refusals = messages.running.peers["auth"].group_invite_refusals
    refusals.return_value = [cat["id"]]
    response = messages.api.post("/messages/conversations", user=ann, json={"member_ids": [cat["id"], bob["id"]]})
    assert response.status_code == 403, response.text
    assert response.json()["error"] == {"code": "GROUP_INVITES_REFUSED", "message": response.json()["error"]["message"],
                                        "details": {"member_ids": [cat["id"]]}}
    refusals.assert_called_once_with(ann["id"], [cat["id"], bob["id"]])
    with database.connect() as connection:
        assert not connection.scalar(text("SELECT count(*) FROM messages.members WHERE user_id = :id"),
                                     {"id": ann["id"]})
    refusals.reset_mock()
    assert messages.conversation(ann, cat)["kind"] == "direct"
    assert not refusals.called


def test_a_member_whose_account_is_gone_is_shown_as_the_deleted_user(messages):
    ann, bob, cat = messages.user(), messages.user(), messages.user()
    conversation = messages.conversation(ann, bob, cat, title="Trip")
    assert conversation["kind"] == "group" and conversation["title"] == "Trip"
    messages.known.discard(bob["id"])
    seen = messages.api.get(f"/messages/conversations/{conversation['id']}", user=ann).json()
    members = {member["id"]: member for member in seen["members"]}
    assert members[bob["id"]] == deleted_user(bob["id"])
    assert members[cat["id"]] == summary(cat["id"])


def test_ids_that_are_not_uuids_or_not_yours_name_nothing(messages):
    ann, bob, cat = messages.user(), messages.user(), messages.user()
    conversation = messages.conversation(ann, bob)
    message = messages.send(ann, conversation)
    for path in ["/messages/conversations/1%20OR%201=1", f"/messages/conversations/{conversation['id']}",
                 "/messages/conversations/nope/messages"]:
        response = messages.api.get(path, user=cat)
        assert response.status_code == 404 and response.json()["error"]["code"] == "CONVERSATION_NOT_FOUND", path
    for path in ["/messages/nope/reactions", f"/messages/{message['id']}/reactions"]:
        response = messages.api.post(path, user=cat, json={"emoji": "👍"})
        assert response.status_code == 404 and response.json()["error"]["code"] == "MESSAGE_NOT_FOUND", path
    response = messages.api.delete("/messages/nope/reactions/%F0%9F%91%8D", user=ann)
    assert response.status_code == 404 and response.json()["error"]["code"] == "MESSAGE_NOT_FOUND"


# Messages -------------------------------------------------------------------------

def test_a_message_is_answered_and_recorded_as_message_sent(messages, database):
    ann, bob = messages.user(), messages.user()
    conversation = messages.conversation(ann, bob)
    response = messages.api.post("/messages", user=ann, json={"conversation_id": conversation["id"], "body": "hi"})
    assert response.status_code == 201, response.text
    message = response.json()
    assert set(message) == {"id", "conversation_id", "seq", "sender_id", "body", "client_id", "created_at",
                            "reactions", "deleted"}
    assert SECOND.match(message["created_at"]) and message["reactions"] == [] and message["client_id"] is None
    assert message["deleted"] is False
    (payload,) = recorded(database, "message_sent", conversation_id=conversation["id"])
    event = typed(contracts.MessageSent, payload)
    assert payload["message"] == message  # what sockets get is what the API answers
    assert event.sender_id == ann["id"] and sorted(event.recipient_ids) == sorted([ann["id"], bob["id"]])
    listed = messages.api.get(f"/messages/conversations/{conversation['id']}", user=bob).json()
    assert listed["last_message"] == message and listed["unread_count"] == 1


def test_a_retried_send_answers_the_first_message_with_200_and_records_one_event(messages, database):
    ann, bob = messages.user(), messages.user()
    conversation = messages.conversation(ann, bob)

    def send(_):
        return messages.api.post("/messages", user=ann, json={
            "conversation_id": conversation["id"], "body": "once", "client_id": "c-1"})

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(send, range(6)))
    assert sorted(answer.status_code for answer in answers) == [200] * 5 + [201]
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert len(recorded(database, "message_sent", conversation_id=conversation["id"])) == 1
    reused = messages.api.post("/messages", user=ann, json={
        "conversation_id": conversation["id"], "body": "another", "client_id": "c-1"})
    assert reused.status_code == 409 and reused.json()["error"]["code"] == "CLIENT_ID_REUSED"


def test_messages_are_listed_newest_first_by_seq_and_caught_up_after_one(messages):
    ann, bob = messages.user(), messages.user()
    conversation = messages.conversation(ann, bob)
    sent = [messages.send(ann if index % 2 else bob, conversation, f"m{index}") for index in range(5)]
    path = f"/messages/conversations/{conversation['id']}/messages"
    first = messages.api.get(path, user=ann, params={"limit": 3}).json()
    assert [item["id"] for item in first["items"]] == [message["id"] for message in sent[::-1][:3]]
    rest = messages.api.get(path, user=ann, params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [item["id"] for item in rest["items"]] == [sent[1]["id"], sent[0]["id"]] and rest["next_cursor"] is None
    after = messages.api.get(path, user=ann, params={"after": sent[2]["id"]}).json()
    assert [item["id"] for item in after["items"]] == [sent[4]["id"], sent[3]["id"]]


def test_reactions_are_added_once_listed_and_taken_back(messages, database):
    ann, bob = messages.user(), messages.user()
    conversation = messages.conversation(ann, bob)
    message = messages.send(ann, conversation)
    path = f"/messages/{message['id']}/reactions"
    added = messages.api.post(path, user=bob, json={"emoji": "👍"})
    assert added.status_code == 201 and added.json() == {"message_id": message["id"], "user_id": bob["id"],
                                                          "emoji": "👍"}
    assert messages.api.post(path, user=bob, json={"emoji": "👍"}).status_code == 200
    assert messages.api.post(path, user=ann, json={"emoji": "ok"}).status_code == 422
    listed = messages.api.get(f"/messages/conversations/{conversation['id']}/messages", user=ann).json()
    assert listed["items"][0]["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": [bob["id"]]}]
    assert messages.api.delete(path + "/%F0%9F%91%8D", user=bob).status_code == 204
    assert messages.api.delete(path + "/%F0%9F%91%8D", user=bob).status_code == 204  # idempotent
    assert messages.api.delete(path + "/abc", user=bob).status_code == 422
    (added_event,) = [typed(contracts.ReactionAdded, payload)
                      for payload in recorded(database, "reaction_added", message_id=message["id"])]
    (removed_event,) = [typed(contracts.ReactionRemoved, payload)
                        for payload in recorded(database, "reaction_removed", message_id=message["id"])]
    assert (added_event.action, removed_event.action) == ("added", "removed")
    assert added_event.user_id == bob["id"] and sorted(added_event.recipient_ids) == sorted([ann["id"], bob["id"]])


def test_a_read_mark_moves_forward_only_and_is_recorded_when_it_moves(messages, database):
    ann, bob = messages.user(), messages.user()
    conversation = messages.conversation(ann, bob)
    older, newer = messages.send(ann, conversation, "one"), messages.send(ann, conversation, "two")
    read = f"/messages/conversations/{conversation['id']}/read"
    assert messages.api.get(f"/messages/conversations/{conversation['id']}", user=bob).json()["unread_count"] == 2
    assert messages.api.post(read, user=bob, json={"message_id": newer["id"]}).status_code == 204
    assert messages.api.post(read, user=bob, json={"message_id": older["id"]}).status_code == 204  # not back
    assert messages.api.get(f"/messages/conversations/{conversation['id']}", user=bob).json()["unread_count"] == 0
    (event,) = [typed(contracts.ConversationRead, payload)
                for payload in recorded(database, "conversation_read", conversation_id=conversation["id"])]
    assert (event.user_id, event.message_id) == (bob["id"], newer["id"])
    stranger = messages.api.post(read, user=bob, json={"message_id": str(uuid.uuid4())})
    assert stranger.status_code == 404 and stranger.json()["error"]["code"] == "MESSAGE_NOT_FOUND"


# Notifications from the events the service hears ------------------------------------

def test_someone_joining_your_event_notifies_you_once_however_often_it_arrives(messages, interface_config):
    organizer, joiner = messages.user(), messages.user()
    calendar_event, envelope_id = str(uuid.uuid4()), str(uuid.uuid4())
    payload = contracts.ParticipantJoined(
        event=contracts.EventSummary(id=calendar_event, title="Picnic", starts_at="2026-11-23T18:00:00Z",
                                     ends_at="2026-11-23T19:00:00Z", visibility="public", status="scheduled"),
        organizer_id=organizer["id"], user_id=joiner["id"],
    ).to_payload()
    dispatch = event_dispatcher(interface_config)
    for _ in range(2):  # the broker or a replay delivers it again
        dispatch("events", "participant_joined", dict(payload, **{contracts.ENVELOPE_ID: envelope_id}))
    (notification,) = eventually(lambda: messages.notifications(organizer))
    assert notification["type"] == "event_participant_joined" and notification["read_at"] is None
    # The calendar event's id, not the envelope's: the rename is what keeps them apart.
    assert notification["data"] == {"event_id": calendar_event, "event_title": "Picnic", "user_id": joiner["id"]}
    assert SECOND.match(notification["created_at"])
    dispatch("events", "participant_joined", dict(payload, **{contracts.ENVELOPE_ID: str(uuid.uuid4())}))
    eventually(lambda: len(messages.notifications(organizer)) == 2)


def test_joining_your_own_event_or_following_yourself_notifies_nobody(messages):
    ann = messages.user()
    messages.handle("on_participant_joined", contracts.ParticipantJoined(
        envelope_id=str(uuid.uuid4()), organizer_id=ann["id"], user_id=ann["id"],
        event=contracts.EventSummary(id=str(uuid.uuid4()), title="Mine", starts_at="2026-11-23T18:00:00Z",
                                     ends_at="2026-11-23T19:00:00Z", visibility="public", status="scheduled")))
    messages.handle("on_user_followed", contracts.UserFollowed(
        envelope_id=str(uuid.uuid4()), follower_id=ann["id"], followee_id=ann["id"]))
    assert messages.notifications(ann) == []


def test_a_follow_notifies_and_a_deleted_account_loses_its_notifications(messages):
    ann, bob = messages.user(), messages.user()
    followed = contracts.UserFollowed(envelope_id=str(uuid.uuid4()), follower_id=bob["id"], followee_id=ann["id"])
    messages.handle("on_user_followed", followed)
    messages.handle("on_user_followed", followed)  # redelivered
    (notification,) = messages.notifications(ann)
    assert notification["type"] == "new_follower" and notification["data"] == {"follower_id": bob["id"]}
    messages.handle("on_user_deleted", contracts.UserDeleted(envelope_id=str(uuid.uuid4()), user_id=ann["id"]))
    assert messages.notifications(ann) == []


def test_a_message_notifies_the_recipients_without_a_socket_once_per_conversation(
        messages, database, interface_config):
    ann, bob, cat = messages.user(), messages.user(), messages.user()
    conversation = messages.conversation(ann, bob, cat, title="Group")
    Presence(redis_from_config(interface_config)).connected(cat["id"], "sid-" + cat["id"])
    first = messages.send(ann, conversation, "x" * 500)
    (notification,) = eventually(lambda: messages.notifications(bob))
    assert notification["type"] == "message"
    assert notification["data"] == {"conversation_id": conversation["id"], "message_id": first["id"],
                                    "sender_id": ann["id"], "preview": "x" * 139 + "…", "count": 1}
    second = messages.send(ann, conversation, "again")
    eventually(lambda: messages.notifications(bob)[0]["data"]["message_id"] == second["id"])
    (updated,) = messages.notifications(bob)
    assert updated["id"] == notification["id"] and updated["data"]["count"] == 2
    assert messages.notifications(cat) == [] and messages.notifications(ann) == []
    announced = [typed(contracts.NotificationCreated, payload)
                 for payload in recorded(database, "notification_created", user_id=bob["id"])]
    assert [event.recipient_ids for event in announced] == [[bob["id"]], [bob["id"]]]
    assert announced[-1].notification.data["count"] == 2 and SECOND.match(announced[-1].notification.created_at)
    assert messages.api.post("/notifications/read", user=bob, json={}).status_code == 204
    assert messages.notifications(bob)[0]["read_at"] is not None
    assert messages.api.get("/notifications", user=bob, params={"unread_only": "true"}).json()["items"] == []


def test_an_offline_notification_fails_rather_than_dropping_when_presence_is_down(
        run_service, database, interface_config):
    running = run_service(MessagesService, "auth", "presence")
    running.peers["presence"].online_among.side_effect = redis.ConnectionError("down")
    ann, bob = str(uuid.uuid4()), str(uuid.uuid4())
    sent = contracts.MessageSent(
        envelope_id=str(uuid.uuid4()), conversation_id=str(uuid.uuid4()), sender_id=ann, recipient_ids=[ann, bob],
        message=contracts.MessageSummary(id=str(uuid.uuid4()), conversation_id=str(uuid.uuid4()), seq=1,
                                         sender_id=ann, body="hi", client_id=None,
                                         created_at="2026-11-23T18:00:00Z"))
    with pytest.raises(redis.ConnectionError):  # requeued by its handler (services.shared.events)
        with entrypoint_hook(running.container, "on_message_sent") as handler:
            handler(sent)
    with database.connect() as connection:  # the claim went with the rest: the redelivery is handled
        assert not connection.scalar(text("SELECT count(*) FROM messages.processed_events WHERE event_id = :id"),
                                     {"id": sent.envelope_id})


# RPC --------------------------------------------------------------------------------

def test_rpc_answers_membership_and_counts(messages):
    ann, bob, cat = messages.user(), messages.user(), messages.user()
    conversation = messages.conversation(ann, bob)
    container = messages.running.container
    with entrypoint_hook(container, "is_member") as is_member, entrypoint_hook(container, "member_ids") as member_ids:
        assert is_member(conversation["id"], ann["id"]) is True
        assert is_member(conversation["id"], cat["id"]) is False
        assert is_member("nope", ann["id"]) is False
        assert sorted(member_ids(conversation["id"])) == sorted([ann["id"], bob["id"]])
        assert member_ids(None) == []
    with entrypoint_hook(container, "counts") as counts:
        assert counts()["conversations"] >= 1
