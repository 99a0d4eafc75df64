"""One HTTP listener per address per process, shared by every service in it.

Nameko's WebServer binds a socket per service container, so two services in one
`nameko run` cannot share a port. Here every container's server attaches to one
listener per bind address: in development all services (and the Socket.IO app)
answer on one base URL; in Kubernetes each process runs one service and nothing
changes. Unmatched paths get the JSON error format instead of werkzeug's HTML.

Each connection is served by `http_edge.protocol.EdgeProtocol`, with the
timeouts of the config (`HTTP_HEADER_TIMEOUT_SECONDS`, `HTTP_BODY_TIMEOUT_SECONDS`,
`HTTP_KEEPALIVE_TIMEOUT_SECONDS`) and at most `HTTP_MAX_CONNECTIONS` at once:
a client that connects and sends nothing, or sends slowly, holds a slot for a
bounded time, so slow clients cannot fill the pool every service shares.
"""
import errno
import logging
import math
import time
from typing import Any

import eventlet
from eventlet.greenpool import GreenPool
from nameko.exceptions import ConfigurationError
from nameko.web.server import WebServer
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import BaseConverter, Map
from werkzeug.wrappers import Request
from werkzeug.wsgi import ClosingIterator

from http_edge.access import log_request
from http_edge.errors import error_body, error_response, json_response
from http_edge.protocol import EdgeProtocol
from http_edge.request_ids import REQUEST_ID_HEADER, request_id_from
from services.shared.errors import DependencyUnavailable
from services.shared.ids import parse_uuid
from services.shared.observability.metrics import metrics_app

log = logging.getLogger(__name__)

_listeners: dict[Any, "SharedListener"] = {}

# Seconds. Behind nginx or an ingress the head and body arrive at once; a
# phone on a poor network may connect directly in development. Keep-alive
# outlasts the proxies' own idle upstream connections (nginx: 60 s), so a
# proxy never reuses a connection this side is closing.
TIMEOUT_SETTINGS = {  # kind: (config key, default)
    "header": ("HTTP_HEADER_TIMEOUT_SECONDS", 10),
    "body": ("HTTP_BODY_TIMEOUT_SECONDS", 30),
    "keepalive": ("HTTP_KEEPALIVE_TIMEOUT_SECONDS", 75),
}
MAX_CONNECTIONS_DEFAULT = 10000
# accept() errors that say "not now" (out of descriptors or memory), not "never".
_ACCEPT_LATER = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
ACCEPT_PAUSE_SECONDS = 0.1


class ShuttingDown(DependencyUnavailable):
    code = "SHUTTING_DOWN"
    message = "This replica is shutting down; retry the request."


class EdgeRequest(Request):
    """A werkzeug Request with what the edge sets on it: the route's values
    (which the entrypoint reads) and the request id."""

    path_values: dict[str, Any]
    request_id: str


class SharedListener:
    def __init__(self, bind_addr):
        self.bind_addr = bind_addr
        self.servers = []
        self.mounts = {}
        self._url_map = None
        self._app = self._route
        self._pool = GreenPool(size=MAX_CONNECTIONS_DEFAULT)
        self._sock = eventlet.listen(bind_addr)
        self._sock.settimeout(None)
        # `wsgi.errors` stays sys.stderr, which the logging config turns into
        # log records (services.shared.observability.console).
        self._wsgi = eventlet.wsgi.Server(
            self._sock, self._sock.getsockname(), self, protocol=EdgeProtocol,
            log=WsgiLog(logging.getLogger("http_edge.wsgi")), debug=False,
        )
        self.set_timeouts(**{kind: default for kind, (_, default) in TIMEOUT_SETTINGS.items()})
        # Every process, whatever services it runs, answers Prometheus here.
        self.mount("/metrics", metrics_app())
        self._accepting = True
        self._acceptor = eventlet.spawn(self._accept_forever)

    @property
    def port(self):
        return self._sock.getsockname()[1]

    def attach(self, server):
        self.servers.append(server)
        self._url_map = None

    def detach(self, server):
        if server in self.servers:
            self.servers.remove(server)
        self._url_map = None
        if not self.servers:
            self.close()

    def mount(self, prefix, wsgi_app):
        self.mounts[prefix] = wsgi_app

    def close(self):
        self._accepting = False
        self._acceptor.kill()
        self._sock.close()
        _listeners.pop(self.bind_addr, None)

    def url_map(self):
        if self._url_map is None:
            url_map = Map(converters={"uuid": IdConverter})
            for server in self.servers:
                for provider in server._providers:
                    rule = provider.get_url_rule()
                    rule.endpoint = provider
                    url_map.add(rule)
            self._url_map = url_map
        return self._url_map

    def configure(self, config):
        """Apply the HTTP settings of the config (every service of a process has the same)."""
        self.set_timeouts(**{kind: _positive(config, name, default)
                             for kind, (name, default) in TIMEOUT_SETTINGS.items()})
        self._pool.resize(int(_positive(config, "HTTP_MAX_CONNECTIONS", MAX_CONNECTIONS_DEFAULT)))
        self.trust_proxy_hops(int(config.get("TRUSTED_PROXY_HOPS") or 0))

    def set_timeouts(self, header, body, keepalive):
        """Seconds; EdgeProtocol reads them from the eventlet.wsgi Server."""
        self._wsgi.header_timeout = header
        # eventlet.wsgi's socket_timeout bounds each read and write of a body.
        self._wsgi.socket_timeout = body
        # A number, so that eventlet also states it in Keep-Alive headers.
        self._wsgi.keepalive = self._wsgi.keepalive_timeout = keepalive

    def _accept_forever(self):
        failing = False
        while self._accepting:
            try:
                sock, addr = self._sock.accept()
            except OSError as exc:
                if not self._accepting:
                    return
                # Out of file descriptors (say, under a flood of connections):
                # pause and accept again once some close, never stop accepting.
                if not failing:  # once per episode, not ten lines a second
                    level = logging.WARNING if exc.errno in _ACCEPT_LATER else logging.ERROR
                    log.log(level, "accept failed (%s); accepting again shortly", exc)
                failing = True
                eventlet.sleep(ACCEPT_PAUSE_SECONDS)
                continue
            failing = False
            sock.settimeout(self._wsgi.socket_timeout)
            # Waits for a free slot when HTTP_MAX_CONNECTIONS are open.
            self._pool.spawn_n(self._serve, sock, addr)

    def _serve(self, sock, addr):
        try:
            self._wsgi.process_request([addr, sock, eventlet.wsgi.STATE_IDLE])
        except OSError as exc:  # reset, or timed out while the answer was written
            log.debug("connection from %s ended: %s", addr[0] if addr else "?", exc)
        except Exception:
            log.exception("connection failed")
        finally:
            sock.close()

    def trust_proxy_hops(self, hops):
        """Take the client's address from the X-Forwarded-For entry added by the
        hops-th proxy in front (werkzeug's ProxyFix), not from the connection,
        which behind an ingress or the compose edge is always the proxy. Set
        per deployment (TRUSTED_PROXY_HOPS): trusting a hop that is not there
        lets a client pick its own address."""
        self._app = ProxyFix(self._route, x_for=hops) if hops > 0 else self._route

    def __call__(self, environ, start_response):
        start_response = _with_security_headers(start_response)
        try:
            return self._app(environ, start_response)
        except Exception as exc:
            # A mounted app that raised (routes answer their own errors): the
            # error format still, never eventlet's empty text/plain 500.
            return error_response(exc)(environ, start_response)

    def _route(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        for prefix, app in self.mounts.items():
            if path == prefix or path.startswith(prefix + "/"):
                return app(environ, start_response)
        started = time.monotonic()
        request = EdgeRequest(environ, shallow=True)
        if not self._accepting:
            # The last service let go, but a keep-alive connection accepted
            # before may still bring a request: without services there is no
            # route to match, and a 404 would be final where a 503 is retried.
            response = error_response(ShuttingDown())
            response.headers["Connection"] = "close"
            return response(environ, start_response)
        try:
            provider, values = self.url_map().bind_to_environ(environ).match()
        except MethodNotAllowed as exc:
            # RFC 9110: a 405 names the methods the resource does support.
            response = json_response(error_body("METHOD_NOT_ALLOWED", "That method is not allowed here."), 405,
                                     {"Allow": ", ".join(sorted(exc.valid_methods or ()))})
        except NotFound:
            response = json_response(error_body("NOT_FOUND", "No such endpoint."), 404)
        except HTTPException as exc:
            response = json_response(error_body("BAD_REQUEST", exc.description or "Bad request."), exc.code or 400)
        else:
            request.path_values = values
            server = provider.server
            server.in_flight += 1
            try:
                response = provider.handle_request(request)
                body = response(environ, start_response)
            except BaseException:
                server.in_flight -= 1
                raise
            # The count drops once the body is written, so a stopping server
            # waits for the response, not just for the worker.
            return ClosingIterator(body, [server.request_done])
        # No route matched: still one request id, one log line and a count.
        request.request_id = request_id_from(request)
        response.headers[REQUEST_ID_HEADER] = request.request_id
        log_request(request, response, time.monotonic() - started)
        return response(environ, start_response)


def _with_security_headers(start_response):
    """Every answer of the process, mounted apps included: no browser may guess
    a content type other than the one declared (an upload served as HTML)."""
    def start(status, headers, exc_info=None):
        if not any(name.lower() == "x-content-type-options" for name, _ in headers):
            headers = [*headers, ("X-Content-Type-Options", "nosniff")]
        return start_response(status, headers, exc_info)
    return start


class WsgiLog:
    """eventlet.wsgi's log, minus its access lines: `http_edge.access` writes
    one structured line per request, without the query string eventlet would
    include. Tracebacks eventlet reports are errors, whatever level it uses."""

    def __init__(self, logger):
        self.logger = logger

    def info(self, msg, *args, **kwargs):
        if msg.startswith("Traceback"):
            self.logger.error(msg, *args)
        else:
            self.logger.debug(msg, *args)

    def debug(self, msg, *args, **kwargs):
        self.logger.debug(msg, *args)

    def error(self, msg, *args, **kwargs):
        self.logger.error(msg, *args)

    def write(self, msg, *args):
        self.logger.debug(msg.rstrip("\n"), *args)


class MalformedId(str):
    """A path segment where a route declares `<uuid:...>` that is no UUID."""


class IdConverter(BaseConverter):
    """`<uuid:id>` in a route: any one segment matches, and the entrypoint
    answers the resource's own 404 for one that is no UUID (an id that names
    nothing, like an unknown one). The handler gets the canonical string.

    `me` is never an id: it names the caller in routes of their own
    (`/users/me`), and a method those do not take is a 405, not a 404."""

    regex = "(?!me(?![^/]))[^/]+"

    def to_python(self, value):
        return parse_uuid(value) or MalformedId(value)


def _positive(config, name, default):
    value = config.get(name)
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = 0
    if not (number > 0 and math.isfinite(number)):
        raise ConfigurationError(f"{name} must be a positive number, not {value!r}")
    return number


def listener_for(bind_addr):
    listener = _listeners.get(bind_addr)
    if listener is None:
        listener = _listeners[bind_addr] = SharedListener(bind_addr)
    return listener


DRAIN_TIMEOUT_SECONDS = 30


class EdgeWebServer(WebServer):
    """A container's WebServer that serves through the process-wide listener.

    Stopping is graceful: once the container's entrypoints stop, `draining`
    is set and new requests get a 503 (so a load balancer retries them on
    another replica) while requests in flight finish and their responses are
    written before the listener lets go.
    """

    _starting: bool  # set by nameko's WebServer.__init__

    def __init__(self):
        super().__init__()
        self.draining = False
        self.in_flight = 0

    def start(self):
        if not self._starting:
            self._starting = True
            self.listener = listener_for(self.bind_addr)
            self.listener.configure(self.container.config)
            self.listener.attach(self)

    def request_done(self):
        self.in_flight -= 1

    def drain(self):
        self.draining = True

    def stop(self):
        deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
        while self.in_flight > 0 and time.monotonic() < deadline:
            eventlet.sleep(0.05)
        self.listener.detach(self)
        super(WebServer, self).stop()

    def kill(self):
        self.listener.detach(self)
