"""rabbitmq/ as the broker really reads it: a private RabbitMQ node booted with
rabbitmq/rabbitmq.conf, enabled_plugins and definitions.json (only paths and
ports changed), on this machine's rabbitmq-server.

Checks that the configuration keys are accepted, the definitions import on
boot (vhost, users, permissions, policies, exchanges), no `guest` user exists,
a service logs in with its example password, the management UI answers, the
memory watermark is the absolute one, and the Prometheus endpoint serves
queue depth and dead letters. The node has its own name, ports
(LIFYTP_TEST_PORT + 204..207) and data directory, and is stopped at the end.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import requests

from tests.conftest import ROOT, TEST_NAME, TEST_PORT, unavailable

pytestmark = pytest.mark.integration

AMQP_PORT, MANAGEMENT_PORT, DIST_PORT, PROMETHEUS_PORT = (TEST_PORT + offset for offset in (204, 205, 206, 207))
NODE = TEST_NAME.replace("_", "-") + "-rabbitmq@localhost"


def ctl(*args, timeout=60):
    return subprocess.run(["rabbitmqctl", "-n", NODE, "-q", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def node():
    if not shutil.which("rabbitmq-server") or os.geteuid() != 0:
        unavailable("RABBITMQ CONFIG NOT BOOTED: needs rabbitmq-server installed and root (it runs as rabbitmq)")
    base = tempfile.mkdtemp(prefix="lifytp-rabbitmq-")
    with open(os.path.join(ROOT, "rabbitmq", "rabbitmq.conf")) as handle:
        conf = handle.read()
    conf = (conf.replace("/etc/rabbitmq/definitions/definitions.json", os.path.join(base, "definitions.json"))
            .replace("listeners.tcp.default = 5672", f"listeners.tcp.default = {AMQP_PORT}")
            .replace("management.tcp.port = 15672", f"management.tcp.port = {MANAGEMENT_PORT}")
            .replace("prometheus.tcp.port = 15692", f"prometheus.tcp.port = {PROMETHEUS_PORT}"))
    for changed in (AMQP_PORT, MANAGEMENT_PORT, PROMETHEUS_PORT, base):
        assert str(changed) in conf
    with open(os.path.join(base, "rabbitmq.conf"), "w") as handle:
        handle.write(conf)
    for name in ("definitions.json", "enabled_plugins"):
        shutil.copy(os.path.join(ROOT, "rabbitmq", name), os.path.join(base, name))
    for name in ("mnesia", "log", "conf.d"):
        os.makedirs(os.path.join(base, name))
    shutil.chown(base, "rabbitmq", "rabbitmq")
    for root, dirs, files in os.walk(base):
        for name in dirs + files:
            shutil.chown(os.path.join(root, name), "rabbitmq", "rabbitmq")
    # An empty conf.d of its own: the machine's (deploy/local/rabbitmq.sh writes one) would add to rabbitmq/.
    env = dict(os.environ, RABBITMQ_NODENAME=NODE, RABBITMQ_CONFIG_FILE=os.path.join(base, "rabbitmq.conf"),
               RABBITMQ_CONFIG_FILES=os.path.join(base, "conf.d"),
               RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(base, "enabled_plugins"),
               RABBITMQ_MNESIA_BASE=os.path.join(base, "mnesia"), RABBITMQ_LOG_BASE=os.path.join(base, "log"),
               RABBITMQ_DIST_PORT=str(DIST_PORT), RABBITMQ_PID_FILE=os.path.join(base, "pid"))
    ctl("stop")  # a node left over from an interrupted run
    subprocess.run(["rabbitmq-server", "-detached"], env=env, check=True, capture_output=True, timeout=60)
    try:
        deadline = time.monotonic() + 90
        while True:  # until the node has registered its name, await_startup cannot reach it
            started = ctl("await_startup", "--timeout", "60", timeout=90)
            if started.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert started.returncode == 0, started.stderr + open_log(base)
        yield base
    finally:
        ctl("stop")
        deadline = time.monotonic() + 30
        while ctl("status", timeout=20).returncode == 0 and time.monotonic() < deadline:
            time.sleep(1)
        shutil.rmtree(base, ignore_errors=True)


def open_log(base):
    logs = []
    for root, _, files in os.walk(os.path.join(base, "log")):
        for name in files:
            with open(os.path.join(root, name), errors="replace") as handle:
                logs.append(handle.read()[-3000:])
    return "\n".join(logs)


def table(*args):
    result = ctl(*args, "--formatter", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_definitions_are_imported_on_boot_and_no_guest_exists(node):
    with open(os.path.join(ROOT, "rabbitmq", "definitions.json")) as handle:
        definitions = json.load(handle)
    users = {u["user"] for u in table("list_users")}
    assert users == {u["name"] for u in definitions["users"]}
    assert "guest" not in users
    assert [v["name"] for v in table("list_vhosts")] == ["lifytp"]
    permissions = {p["user"]: p for p in table("list_permissions", "-p", "lifytp")}
    for expected in definitions["permissions"]:
        got = permissions[expected["user"]]
        assert (got["configure"], got["write"], got["read"]) == (
            expected["configure"], expected["write"], expected["read"])
    policies = {p["name"]: p for p in table("list_policies", "-p", "lifytp")}
    assert set(policies) == {p["name"] for p in definitions["policies"]}
    exchanges = {e["name"] for e in table("list_exchanges", "-p", "lifytp", "name")}
    assert {e["name"] for e in definitions["exchanges"]} <= exchanges
    queues = {q["name"]: q for q in table("list_queues", "-p", "lifytp", "name", "policy")}
    assert queues["lifytp.dead-letters"]["policy"] == "dead-letters"


def test_a_service_logs_in_with_its_own_user_and_the_management_ui_answers(node):
    from amqp.exceptions import AccessRefused
    from kombu import Connection

    with Connection(f"amqp://lifytp-auth:example-auth@127.0.0.1:{AMQP_PORT}/lifytp", connect_timeout=5) as c:
        c.ensure_connection(max_retries=1)
    with pytest.raises(AccessRefused):
        with Connection(f"amqp://guest:guest@127.0.0.1:{AMQP_PORT}/lifytp", connect_timeout=5) as c:
            c.ensure_connection(max_retries=1)
    overview = requests.get(f"http://127.0.0.1:{MANAGEMENT_PORT}/api/overview", timeout=10,
                            auth=("lifytp-admin", "example-admin"))
    assert overview.status_code == 200
    denied = requests.get(f"http://127.0.0.1:{MANAGEMENT_PORT}/api/overview", timeout=10,
                          auth=("lifytp-auth", "example-auth"))
    assert denied.status_code == 401  # a service account has no management tag


def test_memory_watermark_is_the_absolute_bound_inside_the_container_limit(node):
    status = table("status")
    assert status["vm_memory_high_watermark_setting"] == {"absolute": 600 * 1024 * 1024}
    assert status["vm_memory_high_watermark_limit"] == 600 * 1024 * 1024, status


def metric(text, name, **labels):
    """The value of one sample of the Prometheus text format, or None."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head == name or (head.startswith(name + "{") and all(f'{k}="{v}"' in head for k, v in labels.items())):
            return float(value)
    return None


def test_prometheus_endpoint_serves_queue_depth_and_dead_letters(node):
    from kombu import Connection, Exchange, Queue

    queue = "evt-metrics-probe"  # the event-queues policy dead-letters it into lifytp.dead-letters
    with Connection(f"amqp://lifytp-admin:example-admin@127.0.0.1:{AMQP_PORT}/lifytp", connect_timeout=5) as c:
        channel = c.channel()
        bound = Queue(queue, Exchange("events.events", type="topic", durable=True), routing_key="probe",
                      durable=True)(channel)
        bound.declare()
        c.Producer(channel).publish({"n": 1}, exchange="events.events", routing_key="probe")
        deadline = time.monotonic() + 10
        while (message := bound.get()) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        message.reject(requeue=False)
    base = f"http://127.0.0.1:{PROMETHEUS_PORT}"
    deadline = time.monotonic() + 30
    while True:  # the metrics are collected every few seconds
        overview = requests.get(base + "/metrics", timeout=10).text
        detailed = requests.get(base + "/metrics/detailed", timeout=10,
                                params={"vhost": "lifytp", "family": "queue_coarse_metrics"}).text
        depth = metric(detailed, "rabbitmq_detailed_queue_messages", vhost="lifytp", queue="lifytp.dead-letters")
        if depth == 1 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert depth == 1, detailed[-3000:]
    assert metric(overview, "rabbitmq_global_messages_dead_lettered_rejected_total",
                  queue_type="rabbit_classic_queue", dead_letter_strategy="at_most_once") == 1, overview[-3000:]
