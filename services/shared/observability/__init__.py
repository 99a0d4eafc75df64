"""Operations: Prometheus metrics, structured logs and request-id tracing.

A service adds one line to its class:

    observability = Observability()

Every process serves `GET /metrics` through `http_edge`. The Socket.IO server
reports its connections with `socket_connected()` / `socket_disconnected()`
(or `set_connected_sockets(n)`).
"""
from services.shared.observability.dependency import Observability
from services.shared.observability.metrics import set_connected_sockets, socket_connected, socket_disconnected

__all__ = ["Observability", "set_connected_sockets", "socket_connected", "socket_disconnected"]
