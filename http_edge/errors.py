"""The one place where failures become HTTP status codes and JSON bodies."""
import json
import logging
from collections.abc import Mapping
from typing import Any

from werkzeug.wrappers import Response

from services.shared import errors
from services.shared.failures import as_domain_error

log = logging.getLogger(__name__)


class RequestTimeout(errors.DomainError):
    """The client stopped sending its request body (HTTP_BODY_TIMEOUT_SECONDS):
    a failure of the connection, not of the domain, hence defined here."""

    code = "REQUEST_TIMEOUT"
    message = "The request body did not arrive in time."


STATUS_BY_CATEGORY: dict[type[errors.DomainError], int] = {
    errors.MalformedRequest: 400,
    RequestTimeout: 408,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.TooLarge: 413,
    errors.UnsupportedType: 415,
    errors.InvalidInput: 422,
    errors.RateLimited: 429,
    errors.DependencyUnavailable: 503,
}


def json_response(payload: object, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
        status=status,
        headers=headers,
        mimetype="application/json",
    )


def error_body(code: str, message: str, details: object = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(exc: BaseException) -> Response:
    domain_error = as_domain_error(exc)
    if domain_error is None:
        log.error("unhandled error", exc_info=(type(exc), exc, exc.__traceback__))
        return json_response(error_body("INTERNAL_ERROR", "Something went wrong on our side."), 500)
    status = next(
        code for category, code in STATUS_BY_CATEGORY.items() if isinstance(domain_error, category)
    )
    headers: dict[str, str] = {}
    if isinstance(domain_error, errors.RateLimited):
        headers["Retry-After"] = str(domain_error.retry_after)
    if status == 503:
        headers["Retry-After"] = "1"
    if status == 408:
        # The rest of the body may still come: the connection cannot carry another request.
        headers["Connection"] = "close"
    body = error_body(domain_error.code, domain_error.message, domain_error.details)
    return json_response(body, status, headers)
