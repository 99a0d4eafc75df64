"""Notifications made from other services' events, once per event."""
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from nameko.standalone.events import event_dispatcher
from sqlalchemy import text

from services.messages import schemas
from tests.conftest import eventually

pytestmark = pytest.mark.integration




def _notifications(api, user, **params):
    response = api.get("/notifications", user=user, params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_a_redelivered_event_notifies_once(api, config, db_engine):
    ann, bob = api.register(), api.register()
    dispatch = event_dispatcher(config)
    payload = {"event_id": str(uuid.uuid4()), "follower_id": ann["id"], "followee_id": bob["id"]}
    for _ in range(3):
        dispatch("auth", "user_followed", payload)
    eventually(lambda: _notifications(api, bob))
    time.sleep(0.5)  # time for the redeliveries to be handled
    assert len(_notifications(api, bob)) == 1
    with db_engine.connect() as connection:
        handled = connection.scalar(text(
            "SELECT count(*) FROM messages.processed_events WHERE event_id = :id"), {"id": payload["event_id"]})
    assert handled == 1


def test_malformed_events_are_ignored(api, config):
    bob = api.register()
    dispatch = event_dispatcher(config)
    for payload in [{"follower_id": "x", "followee_id": bob["id"], "event_id": str(uuid.uuid4())},
                    {"followee_id": bob["id"]}, {"event_id": "nope", "followee_id": bob["id"]}]:
        dispatch("auth", "user_followed", payload)
    good = {"event_id": str(uuid.uuid4()), "follower_id": str(uuid.uuid4()), "followee_id": bob["id"]}
    dispatch("auth", "user_followed", good)
    items = eventually(lambda: _notifications(api, bob))
    assert [item["data"]["follower_id"] for item in items] == [good["follower_id"]]


def test_joining_an_event_notifies_its_organizer(api):
    ann, bob = api.register(), api.register()
    starts = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = api.post("/events", user=ann, json={"title": "Picnic", "starts_at": starts, "visibility": "public"})
    assert created.status_code == 201, created.text
    assert api.post(f"/events/{created.json()['id']}/participants", user=bob).status_code in (200, 201)
    items = eventually(lambda: _notifications(api, ann))
    assert items[0]["type"] == "event_participant_joined"
    assert items[0]["data"] == {"event_id": created.json()["id"], "event_title": "Picnic", "user_id": bob["id"]}


def test_notifications_page_and_mark_read(api, config):
    bob = api.register()
    dispatch = event_dispatcher(config)
    followers = [str(uuid.uuid4()) for _ in range(3)]
    for follower_id in followers:
        dispatch("auth", "user_followed", {"event_id": str(uuid.uuid4()), "follower_id": follower_id,
                                           "followee_id": bob["id"]})
    eventually(lambda: len(_notifications(api, bob)) == 3)
    first = api.get("/notifications", user=bob, params={"limit": 2}).json()
    second = api.get("/notifications", user=bob, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    ids = [item["id"] for item in first["items"] + second["items"]]
    assert all(schemas.NotificationAnswer().validate(item) == {} for item in first["items"] + second["items"])
    assert len(set(ids)) == 3 and second["next_cursor"] is None

    stranger = api.register()
    assert api.post("/notifications/read", user=stranger, json={"ids": ids}).status_code == 204
    assert len(_notifications(api, bob, unread_only="true")) == 3  # not theirs to mark
    assert api.post("/notifications/read", user=bob, json={"ids": ids[:1]}).status_code == 204
    assert [item["id"] for item in _notifications(api, bob, unread_only="true")] == ids[1:]
    assert api.get("/notifications", user=bob, params={"unread_only": "maybe"}).status_code == 422


def test_a_deleted_account_loses_its_notifications_but_not_its_messages(api, config, db_engine):
    ann, bob = api.register(), api.register()
    chat = api.post("/messages/conversations", user=ann, json={"member_ids": [bob["id"]]}).json()
    api.post("/messages", user=bob, json={"conversation_id": chat["id"], "body": "bye"})
    assert api.post(f"/users/{bob['id']}/follow", user=ann).status_code == 204
    eventually(lambda: _notifications(api, bob))
    dispatch = event_dispatcher(config)
    dispatch("auth", "user_deleted", {"event_id": str(uuid.uuid4()), "user_id": bob["id"]})

    def remaining():
        with db_engine.connect() as connection:
            return connection.scalar(text("SELECT count(*) FROM messages.notifications WHERE user_id = :u"),
                                     {"u": bob["id"]})

    eventually(lambda: remaining() == 0)
    history = api.get(f"/messages/conversations/{chat['id']}/messages", user=ann).json()["items"]
    assert [item["body"] for item in history] == ["bye"]
