"""What operators do over RPC (`nameko shell`): counts, backlog, outbox replay."""
import time
from datetime import UTC, datetime, timedelta

import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

from tests.conftest import eventually

pytestmark = pytest.mark.integration



def follow_notifications(api, user):
    items = api.get("/notifications", user=user).json()["items"]
    return [item for item in items if item["type"] == "new_follower"]


def test_replaying_the_outbox_sends_events_again_without_doubling_their_effects(api, config):
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    ann, bob = api.register(), api.register()
    assert api.post("/users/{}/follow".format(bob["id"]), user=ann).status_code == 204
    assert len(eventually(lambda: follow_notifications(api, bob))) == 1

    with ClusterRpcProxy(config, timeout=15) as rpc:
        replayed = rpc.auth.replay_outbox(since)
        assert replayed >= 3  # two registrations and the follow, at least
        assert eventually(lambda: rpc.auth.outbox_backlog() == 0)
        with pytest.raises(RemoteError) as refused:
            rpc.auth.replay_outbox("yesterday")
        assert refused.value.exc_type == "InvalidInput"
        counts = rpc.auth.counts()
    assert counts["users"] >= 2 and counts["follows"] >= 1

    time.sleep(1)  # the replayed follow has reached messages by now
    assert len(follow_notifications(api, bob)) == 1


def test_every_service_reports_its_backlog(config, system):
    with ClusterRpcProxy(config, timeout=15) as rpc:
        for service in ("auth", "events", "messages"):
            assert getattr(rpc, service).outbox_backlog() >= 0
