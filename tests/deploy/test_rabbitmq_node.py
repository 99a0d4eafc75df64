"""rabbitmq/ as the broker really reads it: a private RabbitMQ node booted with
rabbitmq/rabbitmq.conf, enabled_plugins and definitions.json (only paths and
ports changed), on this machine's rabbitmq-server.

Checks that the configuration keys are accepted, the definitions import on
boot (vhost, users, permissions, policies, exchanges), no `guest` user exists,
a service logs in with its example password, and the management UI answers.
The node has its own name, ports (LIFYTP_TEST_PORT + 204..206) and data
directory, and is stopped at the end.
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

AMQP_PORT, MANAGEMENT_PORT, DIST_PORT = TEST_PORT + 204, TEST_PORT + 205, TEST_PORT + 206
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
            .replace("management.tcp.port = 15672", f"management.tcp.port = {MANAGEMENT_PORT}"))
    assert str(AMQP_PORT) in conf and str(MANAGEMENT_PORT) in conf and base in conf
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
