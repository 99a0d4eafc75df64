"""auth's user_deleted reaches the events service: the user's coming events
are cancelled, their seats freed, their posts and uploads gone."""
import os
import uuid

import pytest
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import text

from tests.conftest import eventually

pytestmark = pytest.mark.integration




def test_deleted_user_leaves_nothing_behind(api):
    ann, bob = api.register(), api.register()
    anns_event = api.post("/events", user=ann, json={"title": "Ann's", "starts_at": "2030-01-01T10:00:00Z",
                                                     "visibility": "public"}).json()
    bobs_event = api.post("/events", user=bob, json={"title": "Bob's", "starts_at": "2030-01-01T10:00:00Z",
                                                     "visibility": "public", "capacity": 3}).json()
    assert api.post("/events/{}/participants".format(bobs_event["id"]), user=ann).status_code == 201
    post = api.post("/posts", user=ann, json={"body": "bye"}).json()

    with ClusterRpcProxy({"AMQP_URI": os.environ["AMQP_URI"]}, timeout=10) as rpc:
        assert rpc.auth.deactivate_user(ann["id"]) is True

    assert eventually(lambda: api.get("/events/" + anns_event["id"], user=bob).json()["status"] == "cancelled"), \
        "the user_deleted event was not handled in time"
    assert api.get("/events/" + bobs_event["id"], user=bob).json()["participants_count"] == 0
    assert api.get("/posts/" + post["id"], user=bob).status_code == 404
    with ClusterRpcProxy({"AMQP_URI": os.environ["AMQP_URI"]}, timeout=10) as rpc:
        # Operators' RPCs answer.
        assert isinstance(rpc.events.outbox_backlog(), int)
        assert rpc.events.counts()["cancelled_events"] >= 1


def test_a_follow_event_handled_after_the_deletion_brings_no_edge_back(api, config, db_engine):
    """The follow was made before the deletion, but its event was requeued
    (a database blip) and handled after the deletion's."""
    ann, bob = api.register(), api.register()
    dispatch = event_dispatcher(config)
    dispatch("auth", "user_deleted", {"event_id": str(uuid.uuid4()), "user_id": ann["id"]})

    def deletion_handled():
        with db_engine.connect() as connection:
            return connection.scalar(text("SELECT count(*) FROM events.deleted_users WHERE user_id = :id"),
                                     {"id": ann["id"]})

    eventually(deletion_handled)
    late = [{"event_id": str(uuid.uuid4()), "follower_id": ann["id"], "followee_id": bob["id"]},
            {"event_id": str(uuid.uuid4()), "follower_id": bob["id"], "followee_id": ann["id"]}]
    for payload in late:
        dispatch("auth", "user_followed", payload)

    def handled():
        with db_engine.connect() as connection:
            return connection.scalar(text(
                "SELECT count(*) FROM events.processed_events WHERE event_id = ANY(CAST(:ids AS uuid[]))"),
                {"ids": [payload["event_id"] for payload in late]}) == 2

    eventually(handled)
    with db_engine.connect() as connection:
        edges = connection.scalar(text(
            "SELECT count(*) FROM events.follows WHERE follower_id = :id OR followee_id = :id"), {"id": ann["id"]})
    assert edges == 0
