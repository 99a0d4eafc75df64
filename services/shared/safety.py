"""Blocks and mutes where they are enforced: the replicas of auth's graph kept
by events and messages, and the error every service answers a block with.

Auth owns who blocks or mutes whom. Each service that must hide or refuse
something because of it keeps a replica in its own schema, written only by
auth's user_blocked / user_unblocked / user_muted / user_unmuted events
(services.shared.contracts.RelationChanged), and reads it inside its own SQL
queries: one primary-key probe per row at most, never a call to auth.

A replica row is the latest change auth made to one pair: `active` says
whether user_id blocks (mutes) target_id now, `version` orders the changes.
A change older than the row's is ignored, so redelivered or reordered events
cannot undo a newer one; that is also why unblocking keeps a row
(active false) instead of deleting it.

Nothing here knows Nameko: domain modules import it.
"""
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    delete,
    exists,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.selectable import Exists

from services.shared.contracts import RelationChanged
from services.shared.errors import Forbidden

# A user id in SQL: a column (of a model or a table) or a value.
UserRef = ColumnElement[str] | InstrumentedAttribute[str] | str


class Blocked(Forbidden):
    """The two users block each other in one direction or both."""
    code = "BLOCKED"
    message = "You cannot do that with this user."


def replica_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Declare `blocks` and `mutes` (user_id blocks/mutes target_id) in a service's schema."""
    return _relation_table("blocks", metadata), _relation_table("mutes", metadata)


def _relation_table(name: str, metadata: MetaData) -> Table:
    return Table(
        name,
        metadata,
        Column("user_id", UUID(as_uuid=False), nullable=False),
        Column("target_id", UUID(as_uuid=False), nullable=False),
        Column("active", Boolean, nullable=False),
        Column("version", BigInteger, nullable=False),
        PrimaryKeyConstraint("user_id", "target_id"),
        # Forgetting a deleted account finds the rows that name it as target.
        Index(f"ix_{name}_target", "target_id"),
    )


def apply_change(session: Session, table: Table, change: RelationChanged, active: bool,
                 unless: Exists | None = None) -> None:
    """Make the replica say what `change` says of its pair, unless the replica
    holds a newer change already (or `unless` is true: an account gone)."""
    values = select(
        literal(change.user_id, UUID(as_uuid=False)), literal(change.target_id, UUID(as_uuid=False)),
        literal(active), literal(change.version, BigInteger),
    )
    if unless is not None:
        values = values.where(~unless)
    upsert = insert(table).from_select(["user_id", "target_id", "active", "version"], values)
    session.execute(upsert.on_conflict_do_update(
        index_elements=["user_id", "target_id"],
        set_={"active": upsert.excluded.active, "version": upsert.excluded.version},
        where=table.c.version < upsert.excluded.version,
    ))


def forget(session: Session, table: Table, user_id: str) -> None:
    """Remove every row naming user_id (an account that was deleted)."""
    session.execute(delete(table).where(or_(table.c.user_id == user_id, table.c.target_id == user_id)))


def holds(table: Table, user: UserRef, target: UserRef) -> Exists:
    """SQL condition: user blocks (mutes, in the mutes table) target now."""
    return exists().where(table.c.user_id == user, table.c.target_id == target, table.c.active)


def either_blocks(blocks: Table, user: UserRef, other: UserRef) -> ColumnElement[bool]:
    """SQL condition: user blocks other or other blocks user (two primary-key probes)."""
    return or_(holds(blocks, user, other), holds(blocks, other, user))
