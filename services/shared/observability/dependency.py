"""`Observability`: metrics and one log line per call for a Nameko service.

    class EventsService:
        observability = Observability()

Its worker hooks see every entrypoint. For all of them it sets the worker's
call context (so every record logged by the worker carries its request id);
for RPC calls and events it also counts the call, times it and logs one
line. HTTP requests are counted and logged by `http_edge`, which knows the
status code. It also reports the service's worker pool and outbox backlog.
"""
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import eventlet
from nameko.events import EventHandler
from nameko.extensions import DependencyProvider
from nameko.rpc import Rpc
from nameko.web.handlers import HttpRequestHandler

from services.shared.observability.logs import current_call
from services.shared.observability.metrics import OUTBOX_BACKLOG, never_raises, observe_call, worker_pools
from services.shared.outbox import Outbox

calls_log = logging.getLogger("lifytp.calls")
log = logging.getLogger(__name__)

# One COUNT over a partial index per service this often, whoever scrapes.
BACKLOG_REFRESH_SECONDS = 5.0

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

_KINDS = ((HttpRequestHandler, "http"), (Rpc, "rpc"), (EventHandler, "event"))


def entrypoint_kind(entrypoint: Any) -> str:
    for cls, kind in _KINDS:
        if isinstance(entrypoint, cls):
            return kind
    return type(entrypoint).__name__.lower()


def outcome_of(entrypoint: Any, exc_info: ExcInfo | None) -> str:
    if exc_info is None:
        return "ok"
    if isinstance(exc_info[1], entrypoint.expected_exceptions):
        return "expected_error"
    return "error"


class Observability(DependencyProvider):
    def setup(self) -> None:
        self.service_name = self.container.service_name
        self._outboxes = [ext for ext in self.container.dependencies if isinstance(ext, Outbox)]
        self._running = False
        worker_pools.add(self.container)

    def start(self) -> None:
        self._running = True
        if self._outboxes:
            self.container.spawn_managed_thread(self._refresh_backlog_forever)

    def stop(self) -> None:
        self._running = False
        worker_pools.discard(self.container)

    def kill(self) -> None:
        self.stop()

    def get_dependency(self, worker_ctx: Any) -> None:
        return None

    @never_raises
    def worker_setup(self, worker_ctx: Any) -> None:
        # Runs in the worker's greenthread: the context is the worker's alone.
        data = worker_ctx.data
        current_call.set({
            "service": self.service_name,
            "entrypoint": f"{self.service_name}.{worker_ctx.entrypoint.method_name}",
            "request_id": data.get("request_id"),
            "user_id": data.get("user_id"),
            "started": time.monotonic(),
        })

    @never_raises
    def worker_result(self, worker_ctx: Any, result: object = None, exc_info: ExcInfo | None = None) -> None:
        entrypoint = worker_ctx.entrypoint
        kind = entrypoint_kind(entrypoint)
        call = current_call.get()
        if kind == "http" or call is None:
            return
        seconds = time.monotonic() - call["started"]
        outcome = outcome_of(entrypoint, exc_info)
        observe_call(self.service_name, kind, entrypoint.method_name, outcome, seconds)
        # A timer that did its routine work says so only in lifytp_calls: at
        # INFO it would write a line every few seconds per process.
        level = logging.DEBUG if kind == "timer" and outcome == "ok" else logging.INFO
        calls_log.log(
            level, "%s %s %s %.1fms", kind, call["entrypoint"], outcome, seconds * 1000,
            extra={
                "kind": kind,
                "outcome": outcome,
                "duration_ms": round(seconds * 1000, 1),
                "error": type(exc_info[1]).__name__ if exc_info else None,
                "call_id": worker_ctx.call_id,
                "event_id": worker_ctx.data.get("event_id"),
            },
        )

    def worker_teardown(self, worker_ctx: Any) -> None:
        current_call.set(None)

    def _refresh_backlog_forever(self) -> None:
        def refresh() -> None:
            OUTBOX_BACKLOG.labels(self.service_name).set(sum(outbox.pending_count() for outbox in self._outboxes))

        refresh_forever(lambda: self._running, refresh, BACKLOG_REFRESH_SECONDS,
                        f"outbox backlog of {self.service_name}")


def refresh_forever(running: Callable[[], bool], refresh: Callable[[], None], seconds: float, what: str) -> None:
    """Call refresh() (which reads a figure and sets its gauge) every `seconds`
    while running(): for a managed thread. A failure is logged once per outage,
    not every round, and the gauge keeps its last value meanwhile."""
    failing = False
    while running():
        try:
            refresh()
        except Exception:
            if not failing:
                log.warning("%s unreadable", what, exc_info=True)
            failing = True
        else:
            failing = False
        eventlet.sleep(seconds)
