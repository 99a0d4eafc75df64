"""RPC between services with a deadline.

Nameko 2's RpcProxy waits forever for a reply from a service that is down.
A call here either answers within RPC_TIMEOUT_SECONDS or raises
DependencyUnavailable, which the HTTP edge turns into a 503.

The serving side is hardened too: services declare RPC methods with this
module's `rpc`, not Nameko's. Nameko 2 publishes an RPC reply from the
entrypoint's `handle_result`, and an exception there is fatal to the whole
container, so a reply that could not be published while RabbitMQ restarted
took the service down for good. Here such a reply is dropped with a warning
and the request is left unacknowledged: the broker redelivers it once it is
back (the caller, bounded by its own deadline, has answered 503 by then).
"""
import logging
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import eventlet
from nameko import rpc as nameko_rpc
from nameko.exceptions import UnknownService
from nameko.rpc import ReplyListener, RpcConsumer, RpcProxy

from services.shared.errors import DependencyUnavailable
from services.shared.failures import BROKER_FAILURES

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 5


class BrokerTolerantReplyListener(ReplyListener):
    """Nameko 2's ReplyListener acks each reply before handing it to the caller
    waiting on it. When RabbitMQ has just reset the connection, that ack raises
    an OSError (ConnectionResetError) that QueueConsumer.ack_message does not
    catch, and the error kills the whole container. Here the reply is handed on
    all the same: the broker takes an unacked reply back by itself, and a
    redelivered one finds no caller waiting and is dropped."""

    def handle_message(self, body: object, message: Any) -> None:
        try:
            self.queue_consumer.ack_message(message)
        except BROKER_FAILURES:
            log.warning("RPC reply not acknowledged: the broker connection is gone", exc_info=True)
        waiting = self._reply_events.pop(message.properties.get("correlation_id"), None)
        if waiting is not None:
            waiting.send(body)


class BoundedRpcProxy(RpcProxy):
    rpc_reply_listener = BrokerTolerantReplyListener()

    def get_dependency(self, worker_ctx: Any) -> "BoundedServiceProxy":
        timeout = self.container.config.get("RPC_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)
        return BoundedServiceProxy(super().get_dependency(worker_ctx), self.target_service, timeout)


class BoundedServiceProxy:
    def __init__(self, proxy: Any, service_name: str, timeout: float) -> None:
        self._proxy = proxy
        self._service_name = service_name
        self._timeout = timeout

    def __getattr__(self, method_name: str) -> Callable[..., Any]:
        method = getattr(self._proxy, method_name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return call_with_deadline(self._service_name, method, self._timeout, args, kwargs)

        return call


def call_with_deadline(service_name: str, method: Any, timeout: float, args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> Any:
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
    except (UnknownService, *BROKER_FAILURES) as exc:
        raise DependencyUnavailable(
            f"The {service_name} service is unavailable.",
            details={"service": service_name},
        ) from exc
    finally:
        deadline.cancel()


class BrokerTolerantRpcConsumer(RpcConsumer):
    def handle_result(
        self, message: Any, result: object,
        exc_info: tuple[type[BaseException], BaseException, TracebackType | None] | None,
    ) -> Any:
        try:
            return super().handle_result(message, result, exc_info)
        except BROKER_FAILURES:
            log.warning("RPC reply not sent: the broker is unreachable; the request stays unacknowledged "
                        "and is redelivered", exc_info=True)
            try:
                self.queue_consumer.requeue_message(message)
            except BROKER_FAILURES:
                pass  # the connection is gone: the broker requeues it by itself
            return result, exc_info


class Rpc(nameko_rpc.Rpc):
    # One consumer class per container: every RPC method of a service must use
    # this `rpc`, or two consumers would share (and misroute) its queue.
    rpc_consumer = BrokerTolerantRpcConsumer()


if TYPE_CHECKING:
    _Method = TypeVar("_Method", bound=Callable[..., Any])

    # Nameko's decorator registers the entrypoint on the method and returns it unchanged.
    def rpc(method: _Method) -> _Method: ...
else:
    rpc = Rpc.decorator
