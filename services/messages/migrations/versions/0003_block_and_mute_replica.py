"""block and mute replica: auth's blocks and mutes as the messages service enforces them

One row per pair auth ever changed: whether user_id blocks (mutes) target_id
now, and the version of that change, so older changes arriving late are ignored.

Revision ID: b9b38cac1109
Revises: 3af84e9815f5
Create Date: 2026-12-04 18:45:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'b9b38cac1109'
down_revision: Union[str, Sequence[str], None] = '3af84e9815f5'
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
        schema='messages'
        )
        op.create_index(f'ix_{table}_target', table, ['target_id'], unique=False, schema='messages')


def downgrade() -> None:
    """Downgrade schema."""
    for table in TABLES:
        op.drop_index(f'ix_{table}_target', table_name=table, schema='messages')
        op.drop_table(table, schema='messages')
