"""Transactional outbox and idempotent consumption of domain events.

A service records an event in its own `outbox` table inside the transaction
that changes the data the event describes. After the worker finishes, a relay
publishes unpublished rows to RabbitMQ in id order and marks them published.
If the broker is down, writes still succeed; the relay retries until it is back.

Publishing is at-least-once (a crash between publish and mark republishes), so
every consumer records the ids it has handled in `processed_events`, inside the
transaction of its own effect, and skips an id it has seen.
"""
import logging
import uuid
import zlib
from datetime import UTC, datetime
from weakref import WeakKeyDictionary

import eventlet
from eventlet.event import Event
from nameko.amqp.publish import Publisher
from nameko.extensions import DependencyProvider
from nameko.standalone.events import get_event_exchange
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    String,
    Table,
    create_engine,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID, insert

from services.shared.database import ENGINE_OPTIONS, database_uri
from services.shared.errors import InvalidInput
from services.shared.rpc import rpc

log = logging.getLogger(__name__)

BATCH_SIZE = 200
IDLE_SWEEP_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 5.0


def event_tables(metadata):
    """Declare `outbox` and `processed_events` in a service's schema."""
    outbox = Table(
        "outbox",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
        Column("event_type", String(64), nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("request_id", String(64)),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    )
    processed = Table(
        "processed_events",
        metadata,
        Column("event_id", UUID(as_uuid=False), primary_key=True),
        Column("handler", String(64), primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    return outbox, processed


def first_delivery(session, processed_table, event_id, handler):
    """Claim (event_id, handler) in the caller's transaction; False if seen before."""
    claimed = session.execute(
        insert(processed_table)
        .values(event_id=event_id, handler=handler)
        .on_conflict_do_nothing()
        .returning(processed_table.c.event_id)
    ).first()
    return claimed is not None


class OutboxWriter:
    """What a worker gets: records events in the session it is committing."""

    def __init__(self, table, request_id, relay):
        self._table = table
        self._request_id = request_id
        self.recorded = False
        # Operator actions on the relay (see OutboxOperations).
        self.pending_count = relay.pending_count
        self.replay = relay.replay

    def add(self, session, event_type, payload):
        event_id = str(uuid.uuid4())
        session.execute(
            self._table.insert().values(
                event_id=event_id,
                event_type=event_type,
                payload=dict(payload, event_id=event_id),
                request_id=self._request_id,
            )
        )
        self.recorded = True
        return event_id


class Outbox(DependencyProvider):
    def __init__(self, outbox_table):
        self.table = outbox_table
        self._wake = Event()
        self._running = False
        self._writers = WeakKeyDictionary()

    def setup(self):
        config = self.container.config
        self.service_name = self.container.service_name
        self.engine = create_engine(database_uri(config, self.service_name), **ENGINE_OPTIONS)
        self.publisher = Publisher(config["AMQP_URI"])
        self.exchange = get_event_exchange(self.service_name, config)
        # One relay per service publishes at a time, which keeps id order.
        self.lock_key = zlib.crc32(("outbox:" + self.service_name).encode())

    def start(self):
        self._running = True
        self.container.spawn_managed_thread(self._relay_forever)

    def stop(self):
        self._running = False
        self._notify()
        try:
            self.flush()
        except Exception:  # the broker may be the reason we stop; rows stay for later
            log.warning("outbox of %s not drained at stop", self.service_name, exc_info=True)
        self.engine.dispose()

    def kill(self):
        self._running = False
        self.engine.dispose()

    def get_dependency(self, worker_ctx):
        writer = OutboxWriter(self.table, worker_ctx.context_data.get("request_id"), self)
        self._writers[worker_ctx] = writer
        return writer

    def worker_teardown(self, worker_ctx):
        # The worker's transaction is over by now: publish without waiting for
        # the next sweep, so events reach sockets in milliseconds.
        writer = self._writers.pop(worker_ctx, None)
        if writer is not None and writer.recorded:
            self._notify()

    def _notify(self):
        if not self._wake.ready():
            self._wake.send(True)

    def _relay_forever(self):
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

    def flush(self):
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

    def _publish(self, row):
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

    def replay(self, since):
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
        self._notify()
        return queued

    def pending_count(self):
        with self.engine.connect() as conn:
            return conn.scalar(
                select(func.count()).select_from(self.table).where(self.table.c.published_at.is_(None))
            )


class OutboxOperations:
    """RPC for operators (`nameko shell`), mixed into every service with an outbox.

    Reach it through this module (`outbox.OutboxOperations`): `nameko run` would
    take a bare imported class with entrypoints for a service of its own.
    """

    @rpc
    def outbox_backlog(self):
        """Events recorded but not yet published to RabbitMQ."""
        return self.outbox.pending_count()

    @rpc
    def replay_outbox(self, since):
        """Publish again the events recorded since an ISO 8601 time; returns how many."""
        try:
            moment = datetime.fromisoformat(since)
        except (TypeError, ValueError):
            raise InvalidInput("since must be an ISO 8601 time, e.g. 2026-11-23T18:00:00+00:00") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return self.outbox.replay(moment)
