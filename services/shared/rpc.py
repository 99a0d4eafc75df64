"""RPC between services with a deadline.

Nameko 2's RpcProxy waits forever for a reply from a service that is down.
A call here either answers within RPC_TIMEOUT_SECONDS or raises
DependencyUnavailable, which the HTTP edge turns into a 503.

The serving side is hardened here too, for every service (each one imports
this module): Nameko 2 publishes an RPC reply from the entrypoint's
`handle_result`, and an exception there is fatal to the whole container. A
reply that cannot be published because RabbitMQ is restarting therefore took
the service down for good. Now such a reply is dropped with a warning and the
request is left unacknowledged: the broker redelivers it once it is back (the
caller, bounded by its own deadline, has answered 503 by then).
"""
import logging

import eventlet
from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu.exceptions import OperationalError
from nameko.exceptions import UnknownService
from nameko.rpc import RpcConsumer, RpcProxy

from services.shared.errors import DependencyUnavailable

log = logging.getLogger(__name__)

BROKER_FAILURES = (OperationalError, AmqpConnectionError, ConnectionError, OSError)

DEFAULT_TIMEOUT_SECONDS = 5


class BoundedRpcProxy(RpcProxy):
    def get_dependency(self, worker_ctx):
        timeout = self.container.config.get("RPC_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)
        return BoundedServiceProxy(super().get_dependency(worker_ctx), self.target_service, timeout)


class BoundedServiceProxy:
    def __init__(self, proxy, service_name, timeout):
        self._proxy = proxy
        self._service_name = service_name
        self._timeout = timeout

    def __getattr__(self, method_name):
        method = getattr(self._proxy, method_name)

        def call(*args, **kwargs):
            return call_with_deadline(self._service_name, method, self._timeout, args, kwargs)

        return call


def call_with_deadline(service_name, method, timeout, args, kwargs):
    deadline = eventlet.Timeout(timeout)
    try:
        return method.call_async(*args, **kwargs).result()
    except eventlet.Timeout as exc:
        if exc is not deadline:
            raise
        raise DependencyUnavailable(
            f"The {service_name} service did not answer in time.",
            details={"service": service_name},
        ) from None
    except (UnknownService, OperationalError, ConnectionError) as exc:
        raise DependencyUnavailable(
            f"The {service_name} service is unavailable.",
            details={"service": service_name},
        ) from exc
    finally:
        deadline.cancel()


_send_reply_and_ack = RpcConsumer.handle_result


def _reply_unless_broker_down(self, message, result, exc_info):
    try:
        return _send_reply_and_ack(self, message, result, exc_info)
    except BROKER_FAILURES:
        log.warning("RPC reply not sent: the broker is unreachable; the request stays unacknowledged "
                    "and is redelivered", exc_info=True)
        try:
            self.queue_consumer.requeue_message(message)
        except BROKER_FAILURES:
            pass  # the connection is gone: the broker requeues it by itself
        return result, exc_info


if not getattr(RpcConsumer.handle_result, "survives_broker_outage", False):
    _reply_unless_broker_down.survives_broker_outage = True
    RpcConsumer.handle_result = _reply_unless_broker_down
