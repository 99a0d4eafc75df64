"""One transaction per unit of work, with the domain events it records.

    with self.uow as uow:                      # in an entrypoint or handler
        view = schedule.join(uow, user_id, event_id)

Domain code works through `uow.session` and records events with
`uow.record(contract)`; it never commits or rolls back. Leaving the block
commits what succeeded; an exception rolls everything back, row locks
included, before it propagates. Events are rows of the service's own `outbox`
table written in the same session, so an event is recorded exactly when the
change it describes is committed (services.shared.outbox relays them).

A consumer claims each domain event it handles (`uow.first_delivery`) in the
same transaction as its effect, so a redelivered event changes nothing twice.

Nothing here knows Nameko or eventlet: domain code and its unit tests import it.
"""
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Literal

from sqlalchemy import BigInteger, Column, DateTime, Identity, Index, MetaData, String, Table, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID, insert
from sqlalchemy.orm import DeclarativeBase, Session

from services.shared.contracts import ENVELOPE_ID, DomainEvent


def event_tables(metadata: MetaData) -> tuple[Table, Table]:
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


def table_of(model: type[DeclarativeBase]) -> Table:
    """The Table a model maps, typed as one: SQLAlchemy types `__table__` as
    any FROM clause, which has no `delete()`. A Core delete on it runs as
    written, with no ORM synchronisation of the session."""
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} maps no single table")
    return table


class UnitOfWork:
    def __init__(self, session: Session, outbox_table: Table, processed_table: Table,
                 request_id: str | None = None, on_recorded: Callable[[], None] | None = None) -> None:
        self.session = session
        self._outbox = outbox_table
        self._processed = processed_table
        self._request_id = request_id
        # Told after a commit that recorded events, so the relay publishes at once.
        self._on_recorded = on_recorded
        self._recorded = False

    def __enter__(self) -> "UnitOfWork":
        self._recorded = False
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> Literal[False]:
        if exc_type is not None:
            self.session.rollback()
            return False
        self.session.commit()
        if self._recorded and self._on_recorded is not None:
            self._on_recorded()
        return False

    def record(self, event: DomainEvent) -> str:
        """Record a domain event (a services.shared.contracts type) with this transaction."""
        envelope_id = str(uuid.uuid4())
        self.session.execute(self._outbox.insert().values(
            event_id=envelope_id,
            event_type=event.event_type,
            payload=dict(event.to_payload(), **{ENVELOPE_ID: envelope_id}),
            request_id=self._request_id,
        ))
        self._recorded = True
        return envelope_id

    def first_delivery(self, event: DomainEvent, handler: str) -> bool:
        """Claim a received event for `handler` in this transaction; False if it was claimed before."""
        claimed = self.session.execute(
            insert(self._processed)
            .values(event_id=event.envelope_id, handler=handler)
            .on_conflict_do_nothing()
            .returning(self._processed.c.event_id)
        ).first()
        return claimed is not None

