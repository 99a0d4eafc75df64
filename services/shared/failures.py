"""Which exceptions are answers, which mean a dependency is down, which are bugs.

Shared by every layer that must tell them apart: the HTTP edge (a 4xx, a
retryable 503 or a 500), event handlers (requeue an event only when a
dependency was down) and the Socket.IO server (an error ack or a crash).
"""
import redis
from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu.exceptions import OperationalError as KombuOperationalError
from nameko.exceptions import RemoteError, UnknownService
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import OperationalError as DbOperationalError

from services.shared import errors

# What kombu and py-amqp raise of their own when RabbitMQ is unreachable.
BROKER_ERRORS = (KombuOperationalError, AmqpConnectionError)

# A dependency that is down: the caller may retry; never a bug of ours.
# Of the socket's own errors only ConnectionError (refused, reset, broken
# pipe) counts here: any other OSError may be a bug of ours (a missing media
# file, a permission) and must stay a 500.
DEPENDENCY_FAILURES = (
    DbOperationalError,
    redis.ConnectionError,
    redis.TimeoutError,
    *BROKER_ERRORS,
    UnknownService,
    ConnectionError,
)

# Where only the broker's connection can have failed (publishing an RPC
# request or reply), any OSError means it did: kombu passes the socket's
# errors through as they are, and they are not all ConnectionErrors —
# socket.timeout is a TimeoutError, and py-amqp raises a bare
# OSError("Socket closed") or OSError("Server unexpectedly closed
# connection") itself.
BROKER_FAILURES = (*BROKER_ERRORS, OSError)


def as_domain_error(exc: BaseException) -> errors.DomainError | None:
    """Classify any exception as a DomainError, or None for a bug."""
    if isinstance(exc, errors.DomainError):
        return exc
    if isinstance(exc, DEPENDENCY_FAILURES) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        return errors.DependencyUnavailable()
    if isinstance(exc, RemoteError):
        # A remote service raised: that is its bug, but to this caller the
        # dependency failed, so the client sees a retryable 503.
        return errors.DependencyUnavailable(code="DEPENDENCY_FAILED")
    return None
