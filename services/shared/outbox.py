"""Transactional outbox and idempotent consumption of domain events.

A service records an event in its own `outbox` table inside the transaction
that changes the data the event describes (its unit of work,
services.shared.unit_of_work). Once that commits, a relay publishes
unpublished rows to RabbitMQ in id order and marks them published. If the
broker is down, writes still succeed; the relay retries until it is back.

Publishing is at-least-once (a crash between publish and mark republishes), so
every consumer records the ids it has handled in `processed_events`, inside the
transaction of its own effect, and skips an id it has seen.
"""
import logging
import zlib
from datetime import UTC, datetime
from typing import Any

import eventlet
from eventlet.event import Event
from nameko.amqp.publish import Publisher
from nameko.extensions import DependencyProvider
from nameko.standalone.events import get_event_exchange
from sqlalchemy import Row, Table, create_engine, func, select, update
from sqlalchemy.orm import Session

from services.shared.database import ENGINE_OPTIONS, database_uri
from services.shared.errors import InvalidInput
from services.shared.rpc import rpc
from services.shared.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

BATCH_SIZE = 200
IDLE_SWEEP_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 5.0


class OutboxHandle:
    """What a worker gets: the units of work of its service, and the relay's
    operator actions (see OutboxOperations)."""

    def __init__(self, provider: "Outbox", request_id: str | None) -> None:
        self._provider = provider
        self._request_id = request_id
        self.pending_count = provider.pending_count
        self.replay = provider.replay

    def unit_of_work(self, session: Session) -> UnitOfWork:
        # The relay is woken once the events are committed, so they reach
        # sockets in milliseconds rather than at the next sweep.
        return UnitOfWork(session, self._provider.table, self._provider.processed_table,
                          request_id=self._request_id, on_recorded=self._provider.notify)


class UnitsOfWork:
    """Mixed into a service that has `db` (services.shared.database) and
    `outbox` (Outbox): `with self.uow as uow:` runs one unit of work."""

    # What a worker holds once Nameko has injected the service's dependencies.
    db: Any
    outbox: OutboxHandle

    @property
    def uow(self) -> UnitOfWork:
        return self.outbox.unit_of_work(self.db.session)


class Outbox(DependencyProvider):
    def __init__(self, outbox_table: Table, processed_table: Table) -> None:
        self.table = outbox_table
        self.processed_table = processed_table
        self._wake = Event()
        self._running = False

    def setup(self) -> None:
        config = self.container.config
        self.service_name = self.container.service_name
        self.engine = create_engine(database_uri(config, self.service_name), **ENGINE_OPTIONS)
        self.publisher = Publisher(config["AMQP_URI"])
        self.exchange = get_event_exchange(self.service_name, config)
        # One relay per service publishes at a time, which keeps id order.
        self.lock_key = zlib.crc32(("outbox:" + self.service_name).encode())

    def start(self) -> None:
        self._running = True
        self.container.spawn_managed_thread(self._relay_forever)

    def stop(self) -> None:
        self._running = False
        self.notify()
        try:
            self.flush()
        except Exception:  # the broker may be the reason we stop; rows stay for later
            log.warning("outbox of %s not drained at stop", self.service_name, exc_info=True)
        self.engine.dispose()

    def kill(self) -> None:
        self._running = False
        self.engine.dispose()

    def get_dependency(self, worker_ctx: Any) -> OutboxHandle:
        return OutboxHandle(self, worker_ctx.context_data.get("request_id"))

    def notify(self) -> None:
        if not self._wake.ready():
            self._wake.send(True)

    def _relay_forever(self) -> None:
        backoff = 0.0
        while self._running:
            with eventlet.Timeout(backoff or IDLE_SWEEP_SECONDS, False):
                self._wake.wait()
            if self._wake.ready():
                self._wake.reset()
            if not self._running:
                break
            try:
                while self.flush() == BATCH_SIZE:
                    pass
                backoff = 0.0
            except Exception:
                backoff = min(MAX_BACKOFF_SECONDS, max(0.2, backoff * 2))
                log.warning("outbox relay of %s failed; retrying in %.1fs",
                            self.service_name, backoff, exc_info=True)

    def flush(self) -> int:
        """Publish one batch of pending events; return how many went out."""
        published = 0
        with self.engine.begin() as conn:
            if not conn.scalar(select(func.pg_try_advisory_xact_lock(self.lock_key))):
                return 0
            rows = conn.execute(
                select(self.table)
                .where(self.table.c.published_at.is_(None))
                .order_by(self.table.c.id)
                .limit(BATCH_SIZE)
            ).all()
            try:
                for row in rows:
                    self._publish(row)
                    published += 1
            finally:
                if published:
                    ids = [row.id for row in rows[:published]]
                    conn.execute(
                        update(self.table)
                        .where(self.table.c.id.in_(ids))
                        .values(published_at=func.now())
                    )
        return published

    def _publish(self, row: Row[Any]) -> None:
        headers = {"nameko.event_id": row.event_id}
        if row.request_id:
            headers["nameko.request_id"] = row.request_id
        self.publisher.publish(
            row.payload,
            exchange=self.exchange,
            routing_key=row.event_type,
            declare=[self.exchange],
            headers=headers,
        )

    def replay(self, since: datetime) -> int:
        """Send again every event recorded at or after `since` (a datetime).

        For events a consumer never received: its queue did not exist yet, or
        the broker lost them. Consumers skip event ids they have handled, so a
        replay changes nothing for those that did. Returns how many were queued.
        """
        with self.engine.begin() as conn:
            queued = conn.execute(
                update(self.table)
                .where(self.table.c.created_at >= since, self.table.c.published_at.is_not(None))
                .values(published_at=None)
            ).rowcount
        self.notify()
        return queued

    def pending_count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(self.table).where(self.table.c.published_at.is_(None))
            ).scalar_one()


class OutboxOperations:
    """RPC for operators (`nameko shell`), mixed into every service with an outbox.

    Reach it through this module (`outbox.OutboxOperations`): `nameko run` would
    take a bare imported class with entrypoints for a service of its own.
    """

    outbox: OutboxHandle

    @rpc
    def outbox_backlog(self) -> int:
        """Events recorded but not yet published to RabbitMQ."""
        return self.outbox.pending_count()

    @rpc
    def replay_outbox(self, since: str) -> int:
        """Publish again the events recorded since an ISO 8601 time; returns how many."""
        try:
            moment = datetime.fromisoformat(since)
        except (TypeError, ValueError):
            raise InvalidInput("since must be an ISO 8601 time, e.g. 2026-11-23T18:00:00+00:00") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return self.outbox.replay(moment)
