"""Metrics, JSON logs and request-id tracing, against the whole running system."""
import json
import logging
import time
import uuid

import pytest
from nameko.containers import ServiceContainer
from nameko.events import event_handler
from nameko.standalone.rpc import ClusterRpcProxy
from prometheus_client.parser import text_string_to_metric_families

from services.shared.observability import Observability
from services.shared.observability.logs import CallContextFilter, JsonFormatter

pytestmark = pytest.mark.integration


def scrape(api):
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return [sample for family in text_string_to_metric_families(response.text) for sample in family.samples]


def value(samples, name, **labels):
    return sum(sample.value for sample in samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))


def log_lines(system):
    with open(system.log_path) as handle:
        return [json.loads(line) for line in handle if line.startswith("{")]


def wait_for_lines(read, predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in read() if predicate(line)]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def with_request_id(request_id):
    return {"X-Request-ID": request_id}


def test_http_requests_are_counted_by_route_method_and_status(api):
    before = scrape(api)
    ann = api.register()
    assert api.post("/auth/login", json={"login": ann["user"]["username"], "password": ann["password"]}).ok
    assert api.get("/no/such/endpoint").status_code == 404
    unknown_user = "/users/" + str(uuid.uuid4())
    assert api.get(unknown_user, user=ann).status_code == 404
    assert api.post("/auth/register", json={"email": "not an email"}).status_code == 422
    after = scrape(api)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "lifytp_http_requests_total"
    assert moved(requests, service="auth", route="/auth/register", method="POST", status="201") == 1
    assert moved(requests, service="auth", route="/auth/register", method="POST", status="422") == 1
    assert moved(requests, service="auth", route="/auth/login", method="POST", status="200") == 1
    assert moved(requests, service="auth", route="/users/<uuid:id>", method="GET", status="404") == 1
    assert moved(requests, service="none", route="unmatched", method="GET", status="404") == 1
    assert moved("lifytp_http_request_duration_seconds_count", service="auth", route="/auth/login") == 1
    # Routes are URL rules: no id ever becomes a label value.
    assert not [sample for sample in after if unknown_user in sample.labels.get("route", "")]


def test_process_metrics_report_worker_pools_and_the_outbox_backlog(api):
    samples = scrape(api)
    assert value(samples, "lifytp_worker_pool_size", service="auth") == 10
    assert [sample for sample in samples if sample.name == "lifytp_worker_pool_in_use"
            and sample.labels["service"] == "auth"]
    deadline = time.monotonic() + 10
    while not [s for s in samples if s.name == "lifytp_outbox_backlog" and s.labels["service"] == "auth"]:
        assert time.monotonic() < deadline, "no outbox backlog for auth"
        time.sleep(0.5)
        samples = scrape(api)


def test_an_rpc_call_is_counted_and_logged_with_the_callers_request_id(api, system, config):
    request_id = "obs-rpc-" + uuid.uuid4().hex[:8]
    before = scrape(api)
    with ClusterRpcProxy(config, context_data={"request_id": request_id}) as cluster:
        assert cluster.auth.get_user(str(uuid.uuid4())) is None
    after = scrape(api)
    labels = {"service": "auth", "kind": "rpc", "method": "get_user"}
    assert value(after, "lifytp_calls_total", outcome="ok", **labels) - value(
        before, "lifytp_calls_total", outcome="ok", **labels) == 1
    assert value(after, "lifytp_call_duration_seconds_count", **labels) > value(
        before, "lifytp_call_duration_seconds_count", **labels)

    [line] = wait_for_lines(lambda: log_lines(system), lambda line: line.get("request_id") == request_id)
    assert line["logger"] == "lifytp.calls" and line["entrypoint"] == "auth.get_user"
    assert line["kind"] == "rpc" and line["outcome"] == "ok" and line["duration_ms"] >= 0


class RegistrationWatcher:
    """Another service, in this process, consuming auth's events as any consumer would."""

    name = "observability_watcher"
    observability = Observability()

    @event_handler("auth", "user_registered")
    def on_user_registered(self, payload):
        pass


class Captured(logging.Handler):
    def __init__(self):
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.addFilter(CallContextFilter())
        self.lines = []

    def emit(self, record):
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def watcher(config):
    captured = Captured()
    calls_log = logging.getLogger("lifytp.calls")
    calls_log.addHandler(captured)
    calls_log.setLevel(logging.INFO)
    container = ServiceContainer(RegistrationWatcher, config)
    container.start()
    yield captured
    container.stop()
    calls_log.removeHandler(captured)


def test_a_request_id_follows_an_http_request_through_the_outbox_into_another_service(api, system, watcher):
    request_id = "obs-trace-" + uuid.uuid4().hex[:8]
    body = {"email": request_id + "@example.com", "username": request_id.replace("-", "_"),
            "password": "correct horse battery"}
    response = api.post("/auth/register", json=body, headers=with_request_id(request_id))
    assert response.status_code == 201
    assert response.headers["X-Request-ID"] == request_id

    [access] = wait_for_lines(lambda: log_lines(system), lambda line: line.get("request_id") == request_id
                              and line["logger"] == "http_edge.access")
    assert access["service"] == "auth" and access["route"] == "/auth/register" and access["status"] == 201
    assert access["entrypoint"] == "auth.register" and access["outcome"] == "ok"

    [handled] = wait_for_lines(lambda: watcher.lines, lambda line: line.get("request_id") == request_id)
    assert handled["service"] == "observability_watcher" and handled["kind"] == "event"
    assert handled["entrypoint"] == "observability_watcher.on_user_registered" and handled["outcome"] == "ok"
    assert handled["event_id"]


def test_a_request_id_follows_an_http_request_into_an_rpc_of_another_service(api, system):
    request_id = "obs-rpc-trace-" + uuid.uuid4().hex[:8]
    ann = api.register()
    response = api.patch("/users/me", user=ann, json={"avatar_media_id": str(uuid.uuid4())},
                         headers=with_request_id(request_id))
    assert response.status_code == 422  # no such media: events answered over RPC

    lines = wait_for_lines(lambda: log_lines(system), lambda line: line.get("request_id") == request_id
                           and line.get("entrypoint") == "events.get_media")
    assert lines and lines[0]["kind"] == "rpc" and lines[0]["user_id"] == ann["id"]
    [access] = [line for line in log_lines(system)
                if line.get("request_id") == request_id and line["logger"] == "http_edge.access"]
    assert access["status"] == 422 and access["user_id"] == ann["id"]


def test_no_password_or_token_reaches_the_logs(api, system):
    password = "obs-secret-" + uuid.uuid4().hex
    ann = api.register(password=password)
    login = api.post("/auth/login", json={"login": ann["user"]["username"], "password": password}).json()
    refreshed = api.post("/auth/refresh", json={"refresh_token": login["refresh_token"]}).json()
    api.get("/auth/me", headers={"Authorization": "Bearer " + refreshed["access_token"]})
    api.get("/auth/me?access_token=" + refreshed["access_token"], headers={"Authorization": "Bearer not-a-jwt"})
    api.get("/no/such/endpoint?refresh_token=" + refreshed["refresh_token"])
    api.post("/auth/login", json={"login": ann["user"]["username"], "password": password + "-wrong"})
    api.post("/auth/register", json={"email": "bad", "username": "x", "password": password})

    wait_for_lines(lambda: log_lines(system), lambda line: line.get("path") == "/no/such/endpoint")
    with open(system.log_path) as handle:
        text = handle.read()
    secrets = [password, ann["access_token"], ann["refresh_token"], login["access_token"], login["refresh_token"],
               refreshed["access_token"], refreshed["refresh_token"]]
    assert text and not [secret for secret in secrets if secret in text]
    assert "not-a-jwt" not in text
