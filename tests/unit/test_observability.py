"""Metrics, structured logs and request-id tracing, without a broker or database."""
import contextlib
import io
import json
import logging
import traceback
from unittest import mock

import eventlet
import pytest
from eventlet.event import Event
from nameko.containers import ServiceContainer
from nameko.events import EventHandler
from nameko.rpc import Rpc
from nameko.testing.services import dummy, entrypoint_hook
from prometheus_client import REGISTRY
from werkzeug.test import Client, EnvironBuilder
from werkzeug.wrappers import Request, Response

from http_edge.access import log_request
from http_edge.entrypoint import JsonHttpEntrypoint
from http_edge.server import WsgiLog
from services.shared import observability
from services.shared.errors import NotFound
from services.shared.observability import Observability
from services.shared.observability.console import StderrToLog
from services.shared.observability.dependency import entrypoint_kind
from services.shared.observability.logs import (
    REDACTED,
    CallContextFilter,
    JsonFormatter,
    PlainFormatter,
    current_call,
    redact_text,
)
from services.shared.observability.metrics import metrics_app, observe_http
from services.shared.outbox import Outbox

A_JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLWJ5dGVz"
A_BCRYPT_HASH = "$2b$12$" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Captured(logging.Handler):
    """The lines the production handler would write, as parsed JSON."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.addFilter(CallContextFilter())
        self.lines = []

    def emit(self, record):
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def captured():
    handler = Captured()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(old_level)


def record(message, *args, exc_info=None, **extra):
    made = logging.LogRecord("probe", logging.INFO, __file__, 1, message, args, exc_info)
    made.__dict__.update(extra)
    return made


# Formatters and redaction -------------------------------------------------------

def test_json_lines_carry_the_record_fields():
    line = json.loads(JsonFormatter().format(record("GET %s", "/auth/me", request_id="r-1", status=200)))
    assert line["message"] == "GET /auth/me"
    assert line["level"] == "INFO" and line["logger"] == "probe"
    assert line["request_id"] == "r-1" and line["status"] == 200
    assert line["ts"].endswith("+00:00")


def test_json_lines_are_one_line_even_with_a_traceback():
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        import sys

        text = JsonFormatter().format(record("failed", exc_info=sys.exc_info()))
    assert "\n" not in text
    assert "ValueError: boom" in json.loads(text)["exc"]


@pytest.mark.parametrize("secret_text, secret", [
    ("Authorization: Bearer " + A_JWT, A_JWT),
    ("token " + A_JWT + " in a message", A_JWT),
    ("{'email': 'a@b.c', 'password': 'hunter2hunter2'}", "hunter2hunter2"),
    ('{"refresh_token":"rt-opaque-value"}', "rt-opaque-value"),
    ("GET /socket.io/?EIO=4&token=qs-token-value", "qs-token-value"),
    ("[parameters: {'password_hash': '" + A_BCRYPT_HASH + "'}]", A_BCRYPT_HASH),
    ("access_token=at-value; path=/", "at-value"),
])
def test_secrets_never_reach_a_line(secret_text, secret):
    assert secret not in redact_text(secret_text)
    made = record(secret_text)
    assert secret not in JsonFormatter().format(made)
    assert secret not in PlainFormatter("%(message)s").format(made)


def test_sensitive_fields_are_redacted_by_name_at_any_depth():
    made = record("login", password="hunter2", headers={"Authorization": "Basic dXNlcjpwYXNz", "Accept": "*/*"},
                  access_token="x", refresh_token="y", user_id="u-1")
    line = json.loads(JsonFormatter().format(made))
    assert line["password"] == line["access_token"] == line["refresh_token"] == REDACTED
    assert line["headers"] == {"Authorization": REDACTED, "Accept": "*/*"}
    assert line["user_id"] == "u-1"


def test_redaction_leaves_ordinary_lines_alone():
    text = "POST /auth/login 200 12.5ms"
    assert redact_text(text) == text


def test_plain_lines_show_the_request_id_or_a_dash():
    formatter = PlainFormatter("%(levelname)s [%(request_id)s] %(message)s")
    assert formatter.format(record("hello", request_id="r-9")) == "INFO [r-9] hello"
    assert formatter.format(record("hello")) == "INFO [-] hello"


def test_the_filter_adds_the_current_call_and_keeps_explicit_fields():
    context_filter = CallContextFilter()
    outside = record("x")
    context_filter.filter(outside)
    assert not hasattr(outside, "request_id")

    def in_a_worker():
        current_call.set({"service": "auth", "entrypoint": "auth.me", "request_id": "r-2", "user_id": None})
        inside, explicit = record("x"), record("x", request_id="r-explicit")
        context_filter.filter(inside)
        context_filter.filter(explicit)
        return inside, explicit

    inside, explicit = eventlet.spawn(in_a_worker).wait()
    assert (inside.request_id, inside.service, inside.entrypoint) == ("r-2", "auth", "auth.me")
    assert not hasattr(inside, "user_id")
    assert explicit.request_id == "r-explicit"
    assert current_call.get() is None  # another greenthread's context never leaks here


# The dependency provider ----------------------------------------------------------

class ProbeService:
    name = "obs_probe"
    observability = Observability()
    gate = None

    @dummy
    def work(self, value):
        logging.getLogger("probe.inside").warning("working on %s", value)
        return value

    @dummy(expected_exceptions=NotFound)
    def not_found(self):
        raise NotFound()

    @dummy
    def crash(self):
        raise RuntimeError("bug")

    @dummy
    def wait(self):
        ProbeService.gate.wait()


@pytest.fixture
def probe():
    container = ServiceContainer(ProbeService, {"max_workers": 3})
    container.start()
    yield container
    container.stop()


def test_every_line_a_worker_logs_carries_its_request_id(probe, captured):
    with entrypoint_hook(probe, "work", context_data={"request_id": "r-abc", "user_id": "u-1"}) as work:
        assert work("x") == "x"
    inside = next(line for line in captured if line["logger"] == "probe.inside")
    assert inside["request_id"] == "r-abc" and inside["user_id"] == "u-1"
    assert inside["entrypoint"] == "obs_probe.work"
    call = next(line for line in captured if line["logger"] == "lifytp.calls")
    assert call["request_id"] == "r-abc" and call["outcome"] == "ok" and call["kind"] == "entrypoint"
    assert call["service"] == "obs_probe" and call["duration_ms"] >= 0 and call["call_id"].startswith("obs_probe.work.")


def test_concurrent_workers_keep_their_own_request_ids(probe, captured):
    running = [spawn(probe, "work", request_id, request_id=request_id) for request_id in ["r-1", "r-2", "r-3"]]
    assert [finished.wait() for finished in running] == ["r-1", "r-2", "r-3"]
    inside = [line for line in captured if line["logger"] == "probe.inside"]
    assert sorted((line["message"], line["request_id"]) for line in inside) == [
        ("working on r-1", "r-1"), ("working on r-2", "r-2"), ("working on r-3", "r-3")]


def test_calls_are_counted_and_timed_by_outcome(probe, captured):
    def count(method, outcome):
        return sample("lifytp_calls_total", service="obs_probe", kind="entrypoint", method=method, outcome=outcome)

    before = {name: count(*name) for name in [("work", "ok"), ("not_found", "expected_error"), ("crash", "error")]}
    timed = sample("lifytp_call_duration_seconds_count", service="obs_probe", kind="entrypoint", method="work")
    with entrypoint_hook(probe, "work") as work:
        work("x")
    for failing, error in [("not_found", NotFound), ("crash", RuntimeError)]:
        with entrypoint_hook(probe, failing) as hook, pytest.raises(error):
            hook()
    assert all(count(*name) == before[name] + 1 for name in before)
    assert sample("lifytp_call_duration_seconds_count", service="obs_probe", kind="entrypoint",
                  method="work") == timed + 1
    crash = next(line for line in captured if line.get("entrypoint") == "obs_probe.crash"
                 and line["logger"] == "lifytp.calls")
    assert crash["outcome"] == "error" and crash["error"] == "RuntimeError"


def test_worker_pool_use_is_reported_per_service(probe):
    ProbeService.gate = Event()
    assert sample("lifytp_worker_pool_size", service="obs_probe") == 3
    assert sample("lifytp_worker_pool_in_use", service="obs_probe") == 0
    running = spawn(probe, "wait")
    eventlet.sleep(0)
    assert sample("lifytp_worker_pool_in_use", service="obs_probe") == 1
    ProbeService.gate.send(True)
    running.wait()
    assert sample("lifytp_worker_pool_in_use", service="obs_probe") == 0


def test_a_stopped_service_leaves_the_pool_metrics():
    container = ServiceContainer(ProbeService, {"max_workers": 3})
    container.start()
    container.stop()
    assert REGISTRY.get_sample_value("lifytp_worker_pool_size", {"service": "obs_probe"}) is None


def spawn(container, method_name, *args, request_id=None):
    """Start a worker without waiting for it; the Event gets its result."""
    entrypoint = next(entrypoint for entrypoint in container.entrypoints if entrypoint.method_name == method_name)
    finished = Event()

    def handle_result(worker_ctx, result, exc_info):
        finished.send(result)
        return result, exc_info

    container.spawn_worker(entrypoint, args, {}, context_data={"request_id": request_id}, handle_result=handle_result)
    return finished


class FakeOutbox(Outbox):
    def setup(self):
        pass

    def start(self):
        pass

    def stop(self):
        pass

    def pending_count(self):
        return 7


class ServiceWithOutbox:
    name = "obs_outbox_probe"
    outbox = FakeOutbox(None, None)
    observability = Observability()

    @dummy
    def noop(self):
        pass


def test_the_outbox_backlog_is_published_without_a_request():
    container = ServiceContainer(ServiceWithOutbox, {})
    container.start()
    try:
        eventlet.sleep(0.01)
        assert sample("lifytp_outbox_backlog", service="obs_outbox_probe") == 7
    finally:
        container.stop()


@pytest.mark.parametrize("entrypoint, kind", [
    (Rpc(), "rpc"),
    (EventHandler("auth", "user_registered"), "event"),
    (JsonHttpEntrypoint("GET", "/x"), "http"),
])
def test_entrypoint_kinds(entrypoint, kind):
    assert entrypoint_kind(entrypoint) == kind


# HTTP -------------------------------------------------------------------------------

def http_request(method, path, headers=None):
    request = Request(EnvironBuilder(method=method, path=path, headers=headers).get_environ())
    request.request_id = "r-http"
    request.user_id = "u-7"
    return request


def test_an_http_request_is_counted_by_route_and_logged_once(captured):
    labels = {"service": "obs_http", "route": "/users/<string:id>", "method": "GET", "status": "404"}
    before = sample("lifytp_http_requests_total", **labels)
    request = http_request("GET", "/users/0b7a3c58-0000-4000-8000-000000000001?access_token=" + A_JWT,
                           headers={"Authorization": "Bearer " + A_JWT})
    log_request(request, Response(status=404), 0.012, "obs_http", "/users/<string:id>", "obs_http.get_profile")
    assert sample("lifytp_http_requests_total", **labels) == before + 1
    assert sample("lifytp_http_request_duration_seconds_bucket", service="obs_http", route="/users/<string:id>",
                  method="GET", le="0.025") >= 1
    [line] = [line for line in captured if line["logger"] == "http_edge.access"]
    assert line["request_id"] == "r-http" and line["user_id"] == "u-7" and line["status"] == 404
    assert line["route"] == "/users/<string:id>" and line["outcome"] == "client_error"
    assert line["entrypoint"] == "obs_http.get_profile" and line["duration_ms"] == 12.0
    assert A_JWT not in json.dumps(line)


def test_instrumentation_failures_never_fail_the_request():
    with mock.patch("services.shared.observability.metrics.HTTP_REQUESTS.labels", side_effect=ValueError):
        assert observe_http("auth", "/x", "GET", 200, 0.1) is None
    with mock.patch("http_edge.access.log.info", side_effect=RuntimeError):
        log_request(http_request("GET", "/x"), Response(status=200), 0.1, "auth", "/x")


def test_metrics_are_served_in_the_text_format():
    observability.socket_connected()
    response = Client(metrics_app()).get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    body = response.get_data(as_text=True)
    assert "# TYPE lifytp_http_requests_total counter" in body
    assert "lifytp_connected_sockets" in body


def test_connected_sockets_helpers():
    observability.set_connected_sockets(2)
    observability.socket_connected()
    observability.socket_disconnected()
    observability.socket_connected()
    assert sample("lifytp_connected_sockets") == 3


def test_eventlet_access_lines_go_to_debug_and_tracebacks_to_error():
    logger = mock.Mock()
    wsgi_log = WsgiLog(logger)
    wsgi_log.info('127.0.0.1 - - "GET /x?token=1 HTTP/1.1" 200')
    wsgi_log.info("Traceback (most recent call last):\n ...")
    assert logger.debug.call_count == 1 and logger.error.call_count == 1


def test_made_up_http_methods_share_one_series():
    from services.shared.observability.metrics import HTTP_REQUESTS

    for method in ("FOO", "GET\\x00", "propfind", "X" * 200):
        observe_http("auth", "unmatched-test", method, 405, 0.01)
    observe_http("auth", "unmatched-test", "GET", 404, 0.01)
    methods = {sample.labels["method"] for metric in HTTP_REQUESTS.collect() for sample in metric.samples
               if sample.labels.get("route") == "unmatched-test"}
    assert methods == {"other", "GET"}


# stderr: records only ---------------------------------------------------------------


@pytest.fixture
def stderr_records():
    """A StderrToLog whose records are captured, and the raw text it lets through."""
    records = []
    logger = logging.getLogger("stderr-probe-" + str(id(records)))
    logger.propagate = False
    handler = logging.Handler()
    handler.emit = lambda made: records.append((made.levelname, JsonFormatter().format(made)))
    logger.addHandler(handler)
    raw = io.StringIO()
    return StderrToLog(logger, raw), records, raw


def test_a_printed_traceback_becomes_one_redacted_error_record(stderr_records):
    stream, records, raw = stderr_records
    try:
        raise ValueError("login failed for password=hunter2 with " + A_JWT)
    except ValueError:
        traceback.print_exc(file=stream)
    assert len(records) == 1 and records[0][0] == "ERROR"
    message = json.loads(records[0][1])["message"]
    assert message.startswith("Traceback (most recent call last):") and "ValueError: login failed" in message
    assert "hunter2" not in records[0][1] and A_JWT not in records[0][1]
    assert raw.getvalue() == ""


def test_other_lines_become_warnings_and_a_partial_line_waits_for_its_end(stderr_records):
    stream, records, _ = stderr_records
    stream.write("127.0.0.1 - - code 400, mes")
    assert records == []
    stream.write("sage Bad request\n\nsecond line\n")
    assert [level for level, _ in records] == ["WARNING", "WARNING"]
    assert json.loads(records[0][1])["message"] == "127.0.0.1 - - code 400, message Bad request"
    stream.write("no newline at all")
    stream.flush()
    assert json.loads(records[-1][1])["message"] == "no newline at all"


def test_a_greenthread_that_dies_is_logged_not_printed(stderr_records):
    """eventlet's green pools print such tracebacks to sys.stderr."""
    stream, records, raw = stderr_records

    def dies():
        raise RuntimeError("token=abc123 lost")

    with contextlib.redirect_stderr(stream):
        pool = eventlet.GreenPool()
        pool.spawn_n(dies)
        pool.waitall()
    assert [level for level, _ in records] == ["ERROR"]
    assert "RuntimeError" in records[0][1] and "abc123" not in records[0][1]
    assert raw.getvalue() == ""


def test_what_logging_writes_to_stderr_while_stderr_is_logging_goes_out_raw():
    """No loop: a handler that fails while writing a stderr record writes its own complaint raw."""
    raw = io.StringIO()
    logger = logging.getLogger("stderr-loop-probe")
    logger.propagate = False
    stream = StderrToLog(logger, raw)

    class Complaining(logging.Handler):
        def emit(self, made):
            stream.write("--- Logging error ---\n")

    logger.addHandler(Complaining())
    stream.write("a line\n")
    assert raw.getvalue() == "--- Logging error ---\n"
