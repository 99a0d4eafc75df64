"""RPC between services with a deadline.

Nameko 2's RpcProxy waits forever for a reply from a service that is down.
A call here either answers within RPC_TIMEOUT_SECONDS or raises
DependencyUnavailable, which the HTTP edge turns into a 503.
"""
import eventlet
from kombu.exceptions import OperationalError
from nameko.exceptions import UnknownService
from nameko.rpc import RpcProxy

from services.shared.errors import DependencyUnavailable

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
