"""docker compose up, end to end: docker-compose.yml as users run it.

The upstream images cannot be pulled here, so tests/deploy/compose.standins.yml
swaps in stand-ins built from Debian's packages (tests/deploy/standins); every
other line, the product's images, environment, volumes, health checks and
start order, is docker-compose.yml's own. A project of its own, ports of its
own and passwords only this run knows; its volumes are removed at the end.

Through the edge's published port, the smoke flow of deploy/checks/smoke.py
(the one the kind job runs through the Ingress), as a phone: register, log in,
create an event, upload a PNG and load it through the URL the API gave, a
post, and a chat message delivered live on a Socket.IO client. The RabbitMQ
management API lists the `lifytp` vhost and the services' queues. The
request loop of deploy/checks/request_loop.py counts the requests that fail
while auth is paused. Then `down` and `up` again: the user, the event and the
media are still there.
"""
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import requests

from tests.conftest import ROOT, TEST_ENV, TEST_ID, TEST_PORT
from tests.deploy.conftest import TAG, run
from tests.fixtures.events.media_samples import decoded

pytestmark = pytest.mark.integration

EDGE_PORT = TEST_PORT + 210
MANAGEMENT_PORT = TEST_PORT + 211
BASE = f"http://127.0.0.1:{EDGE_PORT}"
PROJECT = "lifytp-test-" + (TEST_ID.lower() or "local")
UP_TIMEOUT = 300
# The example definitions' operator account (rabbitmq/definitions.json, .env.example).
OPERATOR = ("lifytp-admin", "example-admin")


@pytest.fixture(scope="module")
def compose(request, docker, images, standin_images):
    """`docker compose …` for this project, with an env file as a user's .env."""
    directory = tempfile.mkdtemp(prefix="lifytp-compose-")
    env_file = os.path.join(directory, "env")
    settings = {
        "POSTGRES_PASSWORD": secrets.token_hex(12),
        "REDIS_PASSWORD": secrets.token_hex(12),
        "MINIO_ROOT_USER": "lifytp-media",
        "MINIO_ROOT_PASSWORD": secrets.token_hex(12),
        # The example definitions hash these example passwords (.env.example).
        "RABBITMQ_DEFINITIONS": "./rabbitmq/definitions.json",
        **{f"RABBITMQ_{name}_PASSWORD": "example-" + name.lower()
           for name in ("AUTH", "EVENTS", "MESSAGES", "REALTIME")},
        "LIFYTP_PORT": str(EDGE_PORT),
        "RABBITMQ_MANAGEMENT_PORT": str(MANAGEMENT_PORT),
        "LIFYTP_PUBLIC_URL": BASE,
        "LIFYTP_TAG": TAG,
    }
    with open(env_file, "w") as out:
        out.writelines(f"{key}={value}\n" for key, value in settings.items())
    command = [docker, "compose", "--project-name", PROJECT, "--project-directory", ROOT,
               "-f", os.path.join(ROOT, "docker-compose.yml"),
               "-f", os.path.join(ROOT, "tests", "deploy", "compose.standins.yml"), "--env-file", env_file]

    # A user's shell, not the suite's: compose fills `${SMTP_URL:-...}` and the
    # like from the environment, where the suite keeps its own settings.
    users_shell = {key: value for key, value in os.environ.items() if key not in TEST_ENV}

    def compose_command(*args, timeout=UP_TIMEOUT + 60, check=True):
        return run(command + list(args), timeout=timeout, check=check, env=users_shell)

    compose_command("down", "--volumes", "--remove-orphans", check=False)
    failed_before = request.session.testsfailed
    yield compose_command
    if request.session.testsfailed > failed_before:
        print(compose_command("logs", "--no-color", "--tail", "40", check=False).stdout[-20000:])
    compose_command("down", "--volumes", "--remove-orphans", check=False)
    shutil.rmtree(directory, ignore_errors=True)


def up(compose):
    started = time.monotonic()
    try:
        compose("up", "--detach", "--wait", "--wait-timeout", str(UP_TIMEOUT), "--no-build")
    except AssertionError as failure:
        states = compose("ps", "--all", "--format", "{{.Service}} {{.State}} {{.Health}}", check=False).stdout
        logs = compose("logs", "--no-color", "--tail", "30", check=False).stdout
        raise AssertionError(f"{failure}\n{states}\n{logs[-12000:]}") from None
    return time.monotonic() - started


@pytest.fixture(scope="module")
def stack(compose):
    seconds = up(compose)
    print(f"\ndocker compose up --wait: {seconds:.1f}s")
    return {}


class Phone:
    """The mobile app against the edge's published port."""

    def __init__(self):
        self.http = requests.Session()

    def call(self, method, path, token=None, **kwargs):
        headers = {"Authorization": "Bearer " + token} if token else {}
        return self.http.request(method, BASE + path, headers=headers, timeout=20, **kwargs)

    def login(self, user):
        response = self.call("POST", "/auth/login", json={"login": user["username"], "password": user["password"]})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def load_media(self, answer):
        """The bytes behind the URL the API gave, followed as a phone follows it."""
        url = answer["url"] if answer["url"].startswith("http") else BASE + answer["url"]
        redirect = self.http.get(url, allow_redirects=False, timeout=20)
        assert redirect.status_code == 302, redirect.text
        location = redirect.headers["Location"]
        # Signed for the public base URL, and routed there by the edge.
        assert location.startswith(BASE + "/lifytp-media/"), location
        loaded = self.http.get(location, timeout=20)
        assert loaded.status_code == 200, loaded.text
        return location, loaded


def check_script(name, *args, timeout=120):
    """One of deploy/checks/, as the kind job runs it against a cluster."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "deploy", "checks", name), *args],
                          capture_output=True, text=True, timeout=timeout)


def test_the_smoke_flow_passes_through_the_edge(stack):
    """deploy/checks/smoke.py: register, log in, an event, a PNG loaded through
    the URL the API gave, a post, a chat message delivered live on Socket.IO."""
    made = os.path.join(tempfile.mkdtemp(prefix="lifytp-smoke-"), "made.json")
    smoke = check_script("smoke.py", BASE, "--json", made)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert "chat message delivered live on Socket.IO" in smoke.stdout
    with open(made) as handle:
        stack.update(json.load(handle))
    location, loaded = Phone().load_media(stack["media"])
    assert location.split("?")[0] == stack["media_location"].split("?")[0]
    assert loaded.headers["Content-Type"] == "image/png"
    assert decoded(loaded.content)[:2] == ("PNG", (1, 1))
    stack["media_bytes"] = loaded.content


def test_the_mail_service_keeps_the_verification_mail_of_a_registration(compose, stack):
    """Auth's mail worker sends through SMTP_URL to the `mail` service, after
    commit: the smoke flow's registrations each left a verification mail."""
    assert "users" in stack, "the smoke flow did not get as far as registering"
    emails = {user["username"] + "@example.com" for user in stack["users"]}

    def newest():
        return compose("exec", "-T", "mail", "/opt/venv/bin/python", "-m", "services.shared.mail_sink",
                       "--show-newest", "--dir", "/var/lib/lifytp/mail", timeout=60).stdout

    deadline = time.monotonic() + 30
    while "verify-email?token=" not in (shown := newest()):
        assert time.monotonic() < deadline, shown
        time.sleep(1)
    assert "Subject: Confirm your email for LifyTP" in shown
    assert any(f"To: {email}" in shown for email in emails), shown


def test_the_store_serves_only_signed_reads_of_the_exact_url(stack):
    assert "media_location" in stack, "the smoke flow did not get as far as the media"
    location, http = stack["media_location"], requests.Session()
    # The store checks the signature over the host and path it is loaded from.
    tampered = location.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert http.get(tampered, timeout=20).status_code == 403
    assert http.get(location.split("?")[0], timeout=20).status_code == 403  # unsigned
    assert http.put(location, data=b"overwritten", timeout=20).status_code == 403  # the edge serves reads


def test_the_management_api_lists_the_vhost_and_the_services_queues(stack):
    management = f"http://127.0.0.1:{MANAGEMENT_PORT}/api"
    vhosts = requests.get(management + "/vhosts", auth=OPERATOR, timeout=10)
    assert vhosts.status_code == 200, vhosts.text
    assert "lifytp" in {vhost["name"] for vhost in vhosts.json()}
    queues = {queue["name"] for queue in requests.get(management + "/queues/lifytp", auth=OPERATOR, timeout=10).json()}
    assert {"rpc-auth", "rpc-events", "rpc-messages", "lifytp.dead-letters"} <= queues, queues
    assert any(name.startswith("evt-messages-message_sent--realtime") for name in queues), queues
    policies = {policy["name"] for policy in requests.get(management + "/policies/lifytp", auth=OPERATOR,
                                                         timeout=10).json()}
    assert "dead-letters" in policies, policies


def test_the_request_loop_counts_what_fails_while_auth_is_paused(compose, stack):
    """deploy/checks/request_loop.py, which the kind job runs while it deletes a
    pod and rolls a Deployment: every request served while auth runs, the ones
    sent while it is paused counted as failed, the tally written at SIGTERM."""
    tally_file = os.path.join(tempfile.mkdtemp(prefix="lifytp-loop-"), "tally.json")
    loop = subprocess.Popen([sys.executable, os.path.join(ROOT, "deploy", "checks", "request_loop.py"), BASE,
                             "--timeout", "1", "--interval", "0.05", "--json", tally_file],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert loop.stdout.readline().startswith("GET "), "the loop did not start"
        time.sleep(2)
        compose("pause", "auth")
        try:
            time.sleep(3)
        finally:
            compose("unpause", "auth")
        time.sleep(3)
    finally:
        loop.send_signal(signal.SIGTERM)
        output, _ = loop.communicate(timeout=30)
    assert loop.returncode == 1, output  # requests failed
    with open(tally_file) as handle:
        tally = json.load(handle)
    assert f"{tally['requests']} requests, {tally['failed']} failed" in output
    failed = [failure["request"] for failure in tally["failures"]]
    assert failed, tally
    # One outage, each request in it waiting out its timeout; served before it and after it.
    assert failed == list(range(failed[0], failed[-1] + 1)), tally
    assert all(failure["outcome"] in ("ReadTimeout", "504", "502") for failure in tally["failures"]), tally
    assert failed[0] > 10 and tally["requests"] - failed[-1] > 10, tally


def test_down_and_up_again_keeps_the_user_the_event_and_the_media(compose, stack):
    assert "media_bytes" in stack, "the smoke flow did not get far enough to leave data behind"
    compose("down", timeout=180)
    seconds = up(compose)
    print(f"\ndocker compose up --wait after down: {seconds:.1f}s")
    phone = Phone()
    token = phone.login(stack["users"][0])
    event = phone.call("GET", "/events/" + stack["event_id"], token)
    assert event.status_code == 200, event.text
    _, loaded = phone.load_media(stack["media"])
    assert loaded.content == stack["media_bytes"]
