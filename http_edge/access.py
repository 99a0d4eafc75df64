"""One access log line and the HTTP metrics for every request the edge answers.

The route label is the URL rule (`/users/<string:id>`), never the raw path, so
ids do not multiply the series. The query string is never logged: clients may
put tokens there.
"""
import logging

from werkzeug.wrappers import Request, Response

from services.shared.observability.metrics import NO_SERVICE, UNMATCHED_ROUTE, method_label, never_raises, observe_http

log = logging.getLogger("http_edge.access")


def outcome_of(status: int) -> str:
    if status >= 500:
        return "server_error"
    return "client_error" if status >= 400 else "ok"


@never_raises
def log_request(request: Request, response: Response, seconds: float, service: str = NO_SERVICE,
                route: str = UNMATCHED_ROUTE, entrypoint: str | None = None) -> None:
    status = response.status_code
    observe_http(service, route, request.method, status, seconds)
    log.info(
        "%s %s %s %.1fms", request.method, request.path, status, seconds * 1000,
        extra={
            "service": service,
            "entrypoint": entrypoint,
            "kind": "http",
            "route": route,
            "method": request.method,
            "path": request.path,
            "status": status,
            "outcome": outcome_of(status),
            "duration_ms": round(seconds * 1000, 1),
            "request_id": getattr(request, "request_id", None),
            "user_id": getattr(request, "user_id", None),
        },
    )


@never_raises
def log_refused(method: str, status: int, code: str, request_id: str) -> None:
    """A request the listener answered itself (its head or framing is unusable):
    no route saw it. The request line is not logged: it may be 8 KiB of anything."""
    method = method_label(method)
    observe_http(NO_SERVICE, UNMATCHED_ROUTE, method, status, 0.0)
    log.info(
        "%s refused %s %s", method, status, code,
        extra={
            "service": NO_SERVICE,
            "kind": "http",
            "route": UNMATCHED_ROUTE,
            "method": method,
            "status": status,
            "code": code,
            "outcome": outcome_of(status),
            "request_id": request_id,
        },
    )
