"""Categories of failure the domain speaks in.

The domain raises these; it never names an HTTP status. `http_edge.errors`
maps each category to a status code in one table.
"""
from typing import Any


class DomainError(Exception):
    code = "ERROR"
    message = "The request failed."

    def __init__(self, message: str | None = None, *, code: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.details = details or {}
        super().__init__(self.message)


class MalformedRequest(DomainError):
    code = "BAD_REQUEST"
    message = "The request could not be understood."


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"
    message = "A valid access token is required."


class Forbidden(DomainError):
    code = "FORBIDDEN"
    message = "You are not allowed to do that."


class NotFound(DomainError):
    code = "NOT_FOUND"
    message = "Not found."


class Conflict(DomainError):
    code = "CONFLICT"
    message = "The request conflicts with the current state."


class TooLarge(DomainError):
    code = "PAYLOAD_TOO_LARGE"
    message = "The request body is too large."


class UnsupportedType(DomainError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    message = "That content type is not supported."


class InvalidInput(DomainError):
    code = "VALIDATION_FAILED"
    message = "Some fields are invalid."


class RateLimited(DomainError):
    code = "RATE_LIMITED"
    message = "Too many attempts; try again later."

    def __init__(self, retry_after: float, message: str | None = None, **kwargs: Any) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(message, **kwargs)


class DependencyUnavailable(DomainError):
    code = "SERVICE_UNAVAILABLE"
    message = "A service this call depends on is unavailable; try again shortly."
