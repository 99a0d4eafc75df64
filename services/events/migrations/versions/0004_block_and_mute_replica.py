"""block and mute replica: auth's blocks and mutes as the events service enforces them

One row per pair auth ever changed: whether user_id blocks (mutes) target_id
now, and the version of that change, so older changes arriving late are ignored.

Revision ID: 5d098b9a7b36
Revises: 4b8e61d0c2f7
Create Date: 2026-12-04 18:45:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '5d098b9a7b36'
down_revision: Union[str, Sequence[str], None] = '4b8e61d0c2f7'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TABLES = ('blocks', 'mutes')


def upgrade() -> None:
    """Upgrade schema."""
    for table in TABLES:
        op.create_table(table,
        sa.Column('user_id', sa.UUID(as_uuid=False), nullable=False),
        sa.Column('target_id', sa.UUID(as_uuid=False), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('user_id', 'target_id'),
        schema='events'
        )
        op.create_index(f'ix_{table}_target', table, ['target_id'], unique=False, schema='events')


def downgrade() -> None:
    """Downgrade schema."""
    for table in TABLES:
        op.drop_index(f'ix_{table}_target', table_name=table, schema='events')
        op.drop_table(table, schema='events')
