"""auth's user_deleted reaches the events service: the user's coming events
are cancelled, their seats freed, their posts and uploads gone."""
import os

import pytest
from nameko.standalone.rpc import ClusterRpcProxy

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
