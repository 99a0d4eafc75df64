"""The Prometheus metrics of a LifyTP process, served at `GET /metrics`.

One registry per process: in `make run` every service shares it (hence the
`service` label); in Kubernetes each process has its own. Labels hold only
bounded values: service and method names, URL rules (never raw paths), status
codes and outcomes.
"""
import functools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric

_Params = ParamSpec("_Params")
_Result = TypeVar("_Result")

log = logging.getLogger(__name__)

# Seconds; from a cache hit to a bcrypt login to an RPC that hit its deadline.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Requests no route matched (404, 405) belong to no service.
NO_SERVICE = "none"
UNMATCHED_ROUTE = "unmatched"

HTTP_REQUESTS = Counter(
    "lifytp_http_requests", "HTTP requests answered.", ["service", "route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "lifytp_http_request_duration_seconds", "Time to answer an HTTP request.",
    ["service", "route", "method"], buckets=LATENCY_BUCKETS,
)
CALLS = Counter(
    "lifytp_calls", "RPC calls, events and other non-HTTP work handled, by outcome "
    "(ok, expected_error: a domain answer, error: a failure).",
    ["service", "kind", "method", "outcome"],
)
CALL_DURATION = Histogram(
    "lifytp_call_duration_seconds", "Time to handle an RPC call, an event or other non-HTTP work.",
    ["service", "kind", "method"], buckets=LATENCY_BUCKETS,
)
OUTBOX_BACKLOG = Gauge(
    "lifytp_outbox_backlog", "Events recorded but not yet published to RabbitMQ "
    "(the same table is seen by every replica: aggregate with max, not sum).", ["service"],
)
CONNECTED_SOCKETS = Gauge("lifytp_connected_sockets", "Socket.IO connections held by this process.")
REPORTS_OPEN = Gauge(
    "lifytp_reports_open", "Reports waiting for a moderator (every auth replica reads the whole queue: "
    "aggregate with max, not sum).",
)
REPORTS_OLDEST_OPEN_AGE = Gauge(
    "lifytp_reports_oldest_open_age_seconds", "Age of the oldest open report, 0 when none is open "
    "(the stores publish apps whose developers act on reports within 24 hours).",
)
# When the oldest open report was made (a Unix time), as last read; its age is
# computed at each scrape, so it grows between reads of the queue.
_oldest_open_report: list[float | None] = [None]
REPORTS_OLDEST_OPEN_AGE.set_function(
    lambda: max(0.0, time.time() - _oldest_open_report[0]) if _oldest_open_report[0] is not None else 0.0)


def never_raises(function: Callable[_Params, _Result]) -> Callable[_Params, _Result | None]:
    """Instrumentation must never fail the request or call it measures."""

    @functools.wraps(function)
    def guarded(*args: _Params.args, **kwargs: _Params.kwargs) -> _Result | None:
        try:
            return function(*args, **kwargs)
        except Exception:
            log.warning("instrumentation failed in %s", function.__name__, exc_info=True)
            return None

    return guarded


# The method label takes what the client sent: any other token would be a
# new series (50 requests with made-up methods made 850).
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in HTTP_METHODS else "other"


@never_raises
def observe_http(service: str, route: str, method: str, status: int, seconds: float) -> None:
    method = method_label(method)
    HTTP_REQUESTS.labels(service, route, method, str(status)).inc()
    HTTP_DURATION.labels(service, route, method).observe(seconds)


@never_raises
def observe_call(service: str, kind: str, method: str, outcome: str, seconds: float) -> None:
    CALLS.labels(service, kind, method, outcome).inc()
    CALL_DURATION.labels(service, kind, method).observe(seconds)


# Connected sockets: for the Socket.IO server, on connect and disconnect.
@never_raises
def socket_connected() -> None:
    CONNECTED_SOCKETS.inc()


@never_raises
def socket_disconnected() -> None:
    CONNECTED_SOCKETS.dec()


@never_raises
def set_connected_sockets(count: int) -> None:
    CONNECTED_SOCKETS.set(count)


# The moderation queue: for auth, every few seconds.
@never_raises
def set_report_queue(open_count: int, oldest_created_at: float | None) -> None:
    REPORTS_OPEN.set(open_count)
    _oldest_open_report[0] = oldest_created_at


class WorkerPoolCollector:
    """Worker pool use per service, read from the containers at scrape time."""

    def __init__(self) -> None:
        # Extensions hold their container through a weak proxy; keep the
        # proxies, added when a service starts and dropped when it stops.
        self._containers: list[Any] = []

    def add(self, container: Any) -> None:
        if container not in self._containers:
            self._containers.append(container)

    def discard(self, container: Any) -> None:
        self._containers = [known for known in self._containers if known is not container]

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        in_use = GaugeMetricFamily(
            "lifytp_worker_pool_in_use", "Workers running now (at most max_workers).", labels=["service"])
        waiting = GaugeMetricFamily(
            "lifytp_worker_pool_waiting", "Work waiting for a free worker.", labels=["service"])
        size = GaugeMetricFamily("lifytp_worker_pool_size", "max_workers of the service.", labels=["service"])
        for container in list(self._containers):
            # Nameko keeps its worker pool private; read it defensively.
            try:
                pool = container._worker_pool
            except (AttributeError, ReferenceError):
                continue
            in_use.add_metric([container.service_name], pool.running())
            waiting.add_metric([container.service_name], pool.waiting())
            size.add_metric([container.service_name], container.max_workers)
        yield from (in_use, waiting, size)


worker_pools = WorkerPoolCollector()
REGISTRY.register(worker_pools)


def metrics_app() -> Callable[..., Any]:
    """The WSGI app that answers `GET /metrics` in the text exposition format."""
    return make_wsgi_app(REGISTRY)
