"""The messages API over real HTTP, against the whole running system."""
import base64
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from services.messages import schemas

pytestmark = pytest.mark.integration


def _count(db_engine, table, where="true", **params):
    with db_engine.connect() as connection:
        return connection.scalar(text(f"SELECT count(*) FROM messages.{table} WHERE {where}"), params)


def _conversation(api, owner, *others, title=None):
    body = {"member_ids": [user["id"] for user in others]}
    if title:
        body["title"] = title
    response = api.post("/messages/conversations", user=owner, json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


def _send(api, user, conversation, body="hi", **extra):
    response = api.post("/messages", user=user, json={"conversation_id": conversation["id"], "body": body, **extra})
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_direct_conversation_is_created_once(api):
    ann, bob = api.register(), api.register()
    first = api.post("/messages/conversations", user=ann, json={"member_ids": [bob["id"]]})
    assert first.status_code == 201
    again = api.post("/messages/conversations", user=bob, json={"member_ids": [ann["id"]]})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    members = {member["id"]: member for member in first.json()["members"]}
    assert set(members) == {ann["id"], bob["id"]}
    assert members[bob["id"]]["username"] == bob["user"]["username"]


def test_both_people_opening_a_direct_conversation_at_once_get_the_same_one(api, db_engine):
    ann, bob = api.register(), api.register()
    attempts = [(ann, bob), (bob, ann)] * 3
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(
            lambda pair: api.post("/messages/conversations", user=pair[0], json={"member_ids": [pair[1]["id"]]}),
            attempts))
    assert sorted(answer.status_code for answer in answers) == [200] * 5 + [201]
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert _count(db_engine, "members", "conversation_id = :c", c=answers[0].json()["id"]) == 2


def test_group_messages_pages_unread_and_read(api, db_engine):
    ann, bob, cat = api.register(), api.register(), api.register()
    group = _conversation(api, ann, bob, cat, title="Trip")
    assert group["kind"] == "group" and group["title"] == "Trip"
    sent = [_send(api, ann, group, f"m{index}") for index in range(5)]

    listing = api.get("/messages/conversations", user=bob).json()
    entry = next(item for item in listing["items"] if item["id"] == group["id"])
    assert entry["unread_count"] == 5 and entry["last_message"]["id"] == sent[-1]["id"]
    assert api.get("/messages/conversations", user=ann).json()["items"][0]["unread_count"] == 0

    path = "/messages/conversations/{}/messages".format(group["id"])
    first = api.get(path, user=bob, params={"limit": 2}).json()
    assert [item["body"] for item in first["items"]] == ["m4", "m3"]
    _send(api, ann, group, "late")  # a new message does not shift older pages
    second = api.get(path, user=bob, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [item["body"] for item in second["items"]] == ["m2", "m1"]
    since = api.get(path, user=bob, params={"after": sent[-1]["id"]}).json()
    assert [item["body"] for item in since["items"]] == ["late"]
    before = api.get(path, user=bob, params={"before": sent[1]["id"]}).json()
    assert [item["body"] for item in before["items"]] == ["m0"]

    # Answers are what the API document says they are.
    assert schemas.ConversationAnswer().validate(entry) == {}
    assert all(schemas.MessageAnswer().validate(item) == {} for item in first["items"] + second["items"])

    read = api.post(f"/messages/conversations/{group['id']}/read", user=bob, json={"message_id": sent[2]["id"]})
    assert read.status_code == 204
    entry = api.get(f"/messages/conversations/{group['id']}", user=bob).json()
    assert entry["unread_count"] == 3  # m3, m4, late


def test_conversation_list_latest_activity_first_with_cursor(api):
    ann = api.register()
    older, newer = _conversation(api, ann, api.register()), _conversation(api, ann, api.register())
    _send(api, ann, older, "bump")
    page1 = api.get("/messages/conversations", user=ann, params={"limit": 1}).json()
    assert [item["id"] for item in page1["items"]] == [older["id"]]
    page2 = api.get("/messages/conversations", user=ann, params={"limit": 1, "cursor": page1["next_cursor"]}).json()
    assert [item["id"] for item in page2["items"]] == [newer["id"]] and page2["next_cursor"] is None


def test_last_message_is_the_newest_even_when_sends_commit_out_of_order(api):
    ann, bob = api.register(), api.register()
    chat = _conversation(api, ann, bob)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda index: _send(api, ann if index % 2 else bob, chat, f"burst {index}"), range(16)))
    newest = api.get(f"/messages/conversations/{chat['id']}/messages", user=ann, params={"limit": 1}).json()
    assert api.get(f"/messages/conversations/{chat['id']}", user=ann).json()["last_message"]["id"] == \
        newest["items"][0]["id"]


def test_client_id_makes_sending_idempotent_even_concurrently(api, db_engine):
    ann, bob = api.register(), api.register()
    chat = _conversation(api, ann, bob)
    client_id = uuid.uuid4().hex
    body = {"conversation_id": chat["id"], "body": "once", "client_id": client_id}
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: api.post("/messages", user=ann, json=body), range(6)))
    assert sorted(answer.status_code for answer in answers) == [200] * 5 + [201]
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert _count(db_engine, "messages", "client_id = :c", c=client_id) == 1
    reused = api.post("/messages", user=ann, json=dict(body, body="different"))
    assert reused.status_code == 409 and reused.json()["error"]["code"] == "CLIENT_ID_REUSED"


def test_reactions_add_remove_and_validate(api, db_engine):
    ann, bob = api.register(), api.register()
    chat = _conversation(api, ann, bob)
    message = _send(api, ann, chat)
    path = "/messages/{}/reactions".format(message["id"])
    assert api.post(path, user=bob, json={"emoji": "👍"}).status_code == 201
    assert api.post(path, user=bob, json={"emoji": "👍"}).status_code == 200  # one of each per user
    assert api.post(path, user=ann, json={"emoji": "👨‍👩‍👧"}).status_code == 201
    assert api.post(path, user=ann, json={"emoji": "1️⃣"}).status_code == 201
    for bad in ["", "a", "ok", "👍" * 17, "\x00", "👍\n", 7, None, "<b>"]:
        response = api.post(path, user=bob, json={"emoji": bad})
        assert response.status_code == 422, (bad, response.text)
        assert "emoji" in response.json()["error"]["details"]
    page = api.get("/messages/conversations/{}/messages".format(chat["id"]), user=bob).json()
    reactions = {entry["emoji"]: entry for entry in page["items"][0]["reactions"]}
    assert reactions["👍"]["user_ids"] == [bob["id"]] and len(reactions) == 3
    assert api.delete(path + "/👍", user=bob).status_code == 204
    assert api.delete(path + "/👍", user=bob).status_code == 204
    assert api.delete(path + "/abc", user=bob).status_code == 422
    assert _count(db_engine, "reactions", "message_id = :m", m=message["id"]) == 2


def test_bad_input_is_refused_and_changes_nothing(api, db_engine):
    ann, bob, eve = api.register(), api.register(), api.register()
    chat = _conversation(api, ann, bob)
    message = _send(api, ann, chat)
    before = {table: _count(db_engine, table) for table in ("conversations", "messages", "reactions", "members")}

    def refused(response, status, code=None):
        assert response.status_code == status, response.text
        if code:
            assert response.json()["error"]["code"] == code

    unknown = str(uuid.uuid4())
    refused(api.get(f"/messages/conversations/{unknown}", user=ann), 404, "CONVERSATION_NOT_FOUND")
    refused(api.get("/messages/conversations/not-a-uuid", user=ann), 404)
    refused(api.get(f"/messages/conversations/{chat['id']}", user=eve), 404)
    refused(api.get(f"/messages/conversations/{chat['id']}/messages", user=eve), 404)
    refused(api.post("/messages", user=eve, json={"conversation_id": chat["id"], "body": "x"}), 404)
    refused(api.post(f"/messages/{message['id']}/reactions", user=eve, json={"emoji": "👍"}), 404)
    refused(api.post(f"/messages/conversations/{chat['id']}/read", user=eve,
                     json={"message_id": message["id"]}), 404)
    refused(api.post("/messages", user=ann, json={"conversation_id": unknown, "body": "x"}), 404)
    for body in ["", "   ", "x" * 4001, 5, None, "nul\x00"]:
        refused(api.post("/messages", user=ann, json={"conversation_id": chat["id"], "body": body}), 422)
    refused(api.post("/messages", user=ann, json={"conversation_id": chat["id"], "body": "x", "extra": 1}), 422)
    refused(api.post("/messages", user=ann, data="{not json", headers={"Content-Type": "application/json"}), 400)
    refused(api.post("/messages", user=ann, data="x", headers={"Content-Type": "text/plain"}), 415)
    refused(api.post("/messages/conversations", user=ann, json={"member_ids": [unknown]}), 422, "UNKNOWN_MEMBERS")
    refused(api.post("/messages/conversations", user=ann, json={"member_ids": [ann["id"]]}), 422, "NO_OTHER_MEMBERS")
    refused(api.post("/messages/conversations", user=ann, json={"member_ids": ["x"]}), 422)
    refused(api.post("/messages/conversations", user=ann, json={"member_ids": []}), 422)
    refused(api.get("/messages/conversations", user=ann, params={"cursor": "garbage"}), 422, "INVALID_CURSOR")
    refused(api.get(f"/messages/conversations/{chat['id']}/messages", user=ann, params={"limit": 0}), 422)
    refused(api.get(f"/messages/conversations/{chat['id']}/messages", user=ann, params={"after": unknown}), 404)
    refused(api.post(f"/messages/conversations/{chat['id']}/read", user=ann, json={"message_id": unknown}), 404)
    for key in ([10**30], [2**63], [-1.5], ["x"], ["\u0000"], [True], [1, 2]):
        cursor = base64.urlsafe_b64encode(json.dumps(key).encode()).decode()
        refused(api.get(f"/messages/conversations/{chat['id']}/messages", user=ann, params={"cursor": cursor}),
                422, "INVALID_CURSOR")
    refused(api.get("/messages/conversations", user=ann, params={"cursor": base64.urlsafe_b64encode(
        json.dumps(["2026-01-01T00:00:00+00:00", "\u0000"]).encode()).decode()}), 422, "INVALID_CURSOR")
    refused(api.get("/notifications", user=ann, params={"unread_only": "true\u0000"}), 422)
    refused(api.delete(f"/messages/{message['id']}/reactions/%00", user=ann), 422)
    refused(api.post("/messages", user=ann, json={"conversation_id": chat["id"], "body": "x", "client_id": "a" * 65}),
            422)
    refused(api.get("/messages/conversations"), 401)
    refused(api.post("/notifications/read", user=ann, json={"ids": ["nope"]}), 422)
    assert before == {table: _count(db_engine, table) for table in before}
