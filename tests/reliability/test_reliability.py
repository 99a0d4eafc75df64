"""The quick variant of the reliability harness, end to end.

Two replicas of every service and of realtime behind nginx, private
PostgreSQL, Redis and RabbitMQ, a steady mixed load, and the six scenarios:
SIGTERM, kill -9, rolling update, RabbitMQ restart, PostgreSQL and Redis
restart, PostgreSQL down while auth's events reach events and messages. The
harness runs in its own process (real threads, no monkey patching) and
reports its figures as JSON; this test holds them to the requirements.
"""
import json
import os
import subprocess
import sys

import pytest

from tests.reliability.cluster import ROOT
from tests.reliability.harness import SCENARIOS

pytestmark = [pytest.mark.integration, pytest.mark.reliability]



@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    path = tmp_path_factory.mktemp("reliability") / "figures.json"
    run = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "tests.reliability.harness", "--quick", "--json", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={key: value for key, value in os.environ.items() if not key.startswith("PYTEST")},
    )
    assert path.exists(), f"the harness wrote no figures:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    return json.loads(path.read_text())


def by_name(figures):
    return {result["scenario"]: result for result in figures["scenarios"]}


def test_every_scenario_ran(figures):
    assert [result["scenario"] for result in figures["scenarios"]] == list(SCENARIOS)


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario(figures, name):
    result = by_name(figures).get(name)
    assert result is not None, f"{name} did not run"
    # Nothing the clients were told is lost, nothing is stored or pushed twice.
    assert result["requests_lost"] == 0, result["failure_sample"]
    assert result["messages_acknowledged"] > 0
    assert result["messages_missing"] == 0
    assert result["messages_duplicated"] == 0
    assert result["messages_mismatched"] == 0
    assert result["messages_stored"] == result["messages_acknowledged"]
    assert result["deliveries_duplicated"] == 0
    assert not any(result["outbox_pending_after"].values()), result["outbox_pending_after"]
    assert result["replicas_alive"]
    if name in ("1-sigterm", "3-rolling-update"):
        # A graceful stop and a rolling update: not one failed request.
        assert result["requests_failed"] == 0, result["failure_sample"]
    if name.startswith(("4-", "5-", "6-")):
        # Only 503s while a store is down, and every process recovered by itself.
        assert set(status for status in result["statuses"] if not status.startswith("2")) <= {"503"}, \
            result["statuses"]
        stores = [result["details"]] if "store" in result["details"] else list(result["details"].values())
        assert all(store["no_replica_restarted"] for store in stores)
    # Sockets of a stopping replica reconnect by themselves: it closes their
    # transports, never sends the "disconnect" that stock clients take as final.
    assert result["sockets"]["server_disconnects"] == 0, result["sockets"]
    assert not result["problems"], result["problems"]
    # Also across the Redis restart: pushes are requeued while it is down and
    # every replica re-subscribes to the Socket.IO channel at once.
    assert result["deliveries_lost"] == 0, result["lost_sample"]
    if name.startswith("6-"):
        # auth's events met the outage in events and messages and were not
        # acknowledged: once PostgreSQL was back the whole cascade completed.
        assert result["details"]["events_requeued_while_down"] > 0, result["details"]
        assert not any(result["details"]["left_after_cascade"].values()), result["details"]


def test_retries_changed_nothing_twice(figures):
    idempotence = figures["idempotence"]
    # Every user joined the drill event hundreds of times: one row each.
    assert idempotence["event_participants"] <= idempotence["users"]
    assert idempotence["auth_follows"] <= idempotence["users"]
