"""occurrences: every occurrence start of every event, for range queries

Range queries used to expand recurring events in Python on every request, at
most 200 of them per query, so many recurring events of one user hid everyone
else's. They now page through this table. The upgrade fills it from the
events already stored: a single event gets one row, a recurring one a row per
occurrence within the recurrence cap; a stored rule that can no longer be
expanded keeps its first start only, so its organizer still finds it.

Revision ID: 4b8e61d0c2f7
Revises: 7c1d2e5f9a40
Create Date: 2026-12-03 00:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '4b8e61d0c2f7'
down_revision: Union[str, Sequence[str], None] = '7c1d2e5f9a40'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BATCH = 500


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('occurrences',
    sa.Column('event_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.events.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('event_id', 'starts_at'),
    schema='events'
    )
    _backfill(op.get_bind())
    op.create_index('ix_occurrences_starts_at', 'occurrences', ['starts_at', 'event_id'], unique=False,
                    schema='events')
    # The span index served the per-request expansion only.
    op.drop_index('ix_events_span', table_name='events', schema='events')
    op.execute("ANALYZE events.occurrences")


def _backfill(connection: sa.Connection) -> None:
    # Imported here: only the upgrade needs the expansion rules.
    from services.events.recurrence import InvalidRule, expand

    connection.execute(sa.text(
        "INSERT INTO events.occurrences (event_id, starts_at) SELECT id, starts_at FROM events.events "
        "WHERE rrule IS NULL"))
    insert = sa.text("INSERT INTO events.occurrences (event_id, starts_at) "
                     "SELECT CAST(:event_id AS uuid), unnest(CAST(:starts AS timestamptz[])) ON CONFLICT DO NOTHING")
    after = None
    while True:
        # Keyset batches: the whole table never sits in memory.
        query = ("SELECT id, starts_at, rrule, timezone FROM events.events WHERE rrule IS NOT NULL"
                 + (" AND id > :after" if after else "") + " ORDER BY id LIMIT :batch")
        rows = connection.execute(sa.text(query), {"after": after, "batch": BATCH}).all()
        if not rows:
            return
        for row in rows:
            try:
                starts = expand(row.rrule, row.starts_at, row.timezone)
            except (InvalidRule, ValueError, KeyError):
                starts = [row.starts_at]
            connection.execute(insert, {"event_id": row.id, "starts": starts})
        after = rows[-1].id


def downgrade() -> None:
    """Downgrade schema."""
    op.execute("CREATE INDEX ix_events_span ON events.events USING gist (tstzrange(starts_at, series_ends_at, '[]'))")
    op.drop_index('ix_occurrences_starts_at', table_name='occurrences', schema='events')
    op.drop_table('occurrences', schema='events')
