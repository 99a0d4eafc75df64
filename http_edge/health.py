"""`GET /health` (the process lives) and `GET /ready` (its dependencies answer).

A service mixes in HealthEndpoints and lists its probes in `readiness_probes()`:
callables that raise when a dependency is unreachable.

`/health` is the liveness probe: a process that misses it is restarted. It is
answered on the connection's greenlet, not in a worker, so a pool busy with
slow requests (a login storm: bcrypt) never makes a working process look dead;
answering at all shows the event loop runs, which is what liveness asks.
`/ready` runs in a worker, as requests do: it checks the stores through the
same dependencies, and a replica whose pool stays saturated past the probe's
timeout is taken out of the load balancer for a while (not restarted), so new
requests go to replicas that can take them.
"""
from kombu.connection import Connection
from marshmallow import Schema, fields
from nameko.extensions import DependencyProvider
from sqlalchemy import text

from http_edge.entrypoint import http
from services.shared.errors import DependencyUnavailable


class BrokerProbe(DependencyProvider):
    """Opens (and closes) a fresh AMQP connection, as a new consumer would."""

    def setup(self):
        self.amqp_uri = self.container.config["AMQP_URI"]

    def get_dependency(self, worker_ctx):
        return self.ping

    def ping(self):
        with Connection(self.amqp_uri, connect_timeout=2, heartbeat=0) as connection:
            connection.ensure_connection(max_retries=1, timeout=2)


def database_probe(db):
    return lambda: db.session.execute(text("SELECT 1"))


class Status(Schema):
    status = fields.String(required=True, metadata={"enum": ["ok", "ready"]})
    service = fields.String(required=True)


class HealthEndpoints:
    name: str  # the service's, on the class this is mixed into

    @http("GET", "/health", public=True, worker=False, responses={200: Status})
    def health(self, request):
        """The process is alive (answered without a worker: never waits behind busy ones)."""
        return {"status": "ok", "service": self.name}

    @http("GET", "/ready", public=True, responses={200: Status})
    def ready(self, request):
        """Its database, broker and other stores answer (503 names those that do not)."""
        failing = {}
        for name, probe in self.readiness_probes().items():
            try:
                probe()
            except Exception as exc:  # any failure means not ready
                failing[name] = type(exc).__name__
        if failing:
            raise DependencyUnavailable("Not ready.", code="NOT_READY", details=failing)
        return {"status": "ready", "service": self.name}

    def readiness_probes(self):
        raise NotImplementedError
