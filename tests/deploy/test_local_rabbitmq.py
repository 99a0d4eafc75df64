"""deploy/local/rabbitmq.sh (`make setup`) against this machine's RabbitMQ.

Runs the script twice, as `make run` does on every start, then checks through
the management HTTP API on 15672, logged in as lifytp-admin with its
development password: the `lifytp` vhost holds the permissions, policies and
dead-letter exchange, queue and binding of rabbitmq/definitions.json; guest
still reaches `lifytp` and a vhost of this run's own; the UI listens on
loopback only; and the second run changed nothing. What the script sets up
is what `make run` expects, so it is left in place; the vhost is deleted.
"""
import json
import os
import shutil
import socket
import subprocess
from urllib.parse import quote

import pytest
import requests

from tests.conftest import ROOT, TEST_NAME, reset_vhost, unavailable

pytestmark = pytest.mark.integration

SCRIPT = os.path.join(ROOT, "deploy", "local", "rabbitmq.sh")
MANAGEMENT = "http://127.0.0.1:15672"
ADMIN = ("lifytp-admin", "example-admin")  # the example password of .env.example
GUEST = ("guest", "guest")
OWN_VHOST = TEST_NAME + "_localmq"

with open(os.path.join(ROOT, "rabbitmq", "definitions.json")) as handle:
    DEFINITIONS = json.load(handle)


def run_setup():
    result = subprocess.run([SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def api(path, auth=ADMIN):
    answer = requests.get(MANAGEMENT + path, auth=auth, timeout=10)
    assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    return answer.json()


def keep(record, *keys):
    return {key: record.get(key) for key in keys}


def declared_state():
    """What definitions.json declares, as the broker holds it (no counters)."""
    names = [user["name"] for user in DEFINITIONS["users"]] + ["guest"]
    return {
        "users": [keep(api(f"/api/users/{name}"), "name", "password_hash", "hashing_algorithm", "tags")
                  for name in names],
        "permissions": sorted((p["user"], p["configure"], p["write"], p["read"])
                              for p in api("/api/vhosts/lifytp/permissions") if p["user"] in names),
        "policies": sorted(api("/api/policies/lifytp"), key=lambda policy: policy["name"]),
        "exchanges": [keep(api(f"/api/exchanges/lifytp/{quote(e['name'])}"),
                           "name", "type", "durable", "auto_delete", "internal", "arguments")
                      for e in DEFINITIONS["exchanges"]],
        "queues": [keep(api(f"/api/queues/lifytp/{quote(q['name'])}"), "name", "durable", "auto_delete",
                        "arguments", "policy") for q in DEFINITIONS["queues"]],
        "bindings": [api(f"/api/bindings/lifytp/e/{quote(b['source'])}/q/{quote(b['destination'])}")
                     for b in DEFINITIONS["bindings"]],
    }


@pytest.fixture(scope="module")
def setup_twice():
    if not (shutil.which("rabbitmqctl") and shutil.which("rabbitmq-plugins")) or os.geteuid() != 0:
        unavailable("LOCAL RABBITMQ NOT CONFIGURED: needs this machine's rabbitmq-server and root")
    reset_vhost(OWN_VHOST)
    try:
        run_setup()
        before = declared_state()
        second = run_setup()
        yield {"before": before, "after": declared_state(), "second": second}
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", OWN_VHOST], capture_output=True, timeout=60)


def test_the_administrator_logs_in_to_the_management_api(setup_twice):
    assert "administrator" in api("/api/whoami")["tags"]
    assert {vhost["name"] for vhost in api("/api/vhosts")} >= {"lifytp", "lifytp_test", OWN_VHOST}


def test_lifytp_holds_the_definitions_permissions_policies_and_dead_letters(setup_twice):
    state = setup_twice["after"]
    assert {(p["user"], p["configure"], p["write"], p["read"]) for p in DEFINITIONS["permissions"]} <= set(
        state["permissions"])
    assert [keep(p, "name", "pattern", "apply-to", "priority", "definition") for p in state["policies"]] == sorted(
        (keep(p, "name", "pattern", "apply-to", "priority", "definition") for p in DEFINITIONS["policies"]),
        key=lambda policy: policy["name"])
    assert [(e["name"], e["type"], e["durable"]) for e in state["exchanges"]] == [
        (e["name"], e["type"], e["durable"]) for e in DEFINITIONS["exchanges"]]
    dead_letters = api("/api/queues/lifytp/lifytp.dead-letters")
    assert dead_letters["durable"] and dead_letters["policy"] == "dead-letters"
    assert dead_letters["effective_policy_definition"] == {"message-ttl": 1209600000, "max-length": 100000}
    [binding] = api("/api/bindings/lifytp/e/lifytp.dead-letters/q/lifytp.dead-letters")
    assert binding["routing_key"] == "#"
    event_queues = next(p for p in state["policies"] if p["name"] == "event-queues")
    assert event_queues["definition"]["dead-letter-exchange"] == "lifytp.dead-letters"


def test_guest_still_reaches_lifytp_and_the_other_vhosts(setup_twice):
    from kombu import Connection

    assert "administrator" in api("/api/whoami", auth=GUEST)["tags"]
    for vhost in ("lifytp", OWN_VHOST):
        assert keep(api(f"/api/permissions/{quote(vhost)}/guest"), "configure", "write", "read") == {
            "configure": ".*", "write": ".*", "read": ".*"}
        with Connection(f"amqp://guest:guest@127.0.0.1:5672/{vhost}", connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
            channel = connection.channel()
            queue = f"{TEST_NAME}-localmq-probe"
            channel.queue_declare(queue, exclusive=True)
            channel.basic_publish(channel.prepare_message(b"hello"), routing_key=queue)
            assert channel.basic_get(queue, no_ack=True).body == b"hello"


def test_the_management_ui_listens_on_loopback_only(setup_twice):
    [http] = [listener for listener in api("/api/overview")["listeners"] if listener["protocol"] == "http"]
    assert http["socket_opts"]["ip"] == "127.0.0.1"
    addresses = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    for address in [a for a in addresses if ":" not in a and not a.startswith("127.")]:
        with pytest.raises(ConnectionRefusedError):  # this machine's own address: nothing leaves it
            socket.create_connection((address, 15672), timeout=5).close()


def test_a_second_run_changes_nothing(setup_twice):
    assert setup_twice["second"].stdout == "" and setup_twice["second"].stderr == ""
    assert setup_twice["after"] == setup_twice["before"]
