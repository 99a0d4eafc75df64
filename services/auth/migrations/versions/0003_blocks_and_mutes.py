"""blocks and mutes: who blocks or mutes whom, and the sequence numbering their changes

Revision ID: 1aad1fbab5e4
Revises: 7c3e91a4d2b6
Create Date: 2026-12-04 18:45:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '1aad1fbab5e4'
down_revision: Union[str, Sequence[str], None] = '7c3e91a4d2b6'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('blocks',
    sa.Column('blocker_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('blocked_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['blocked_id'], ['auth.users.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['blocker_id'], ['auth.users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('blocker_id', 'blocked_id'),
    schema='auth'
    )
    op.create_index('ix_blocks_blocker_recent', 'blocks', ['blocker_id', 'created_at'], unique=False, schema='auth')
    op.create_index('ix_blocks_blocked', 'blocks', ['blocked_id', 'blocker_id'], unique=False, schema='auth')
    op.create_table('mutes',
    sa.Column('muter_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('muted_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['muted_id'], ['auth.users.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['muter_id'], ['auth.users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('muter_id', 'muted_id'),
    schema='auth'
    )
    op.create_index('ix_mutes_muter_recent', 'mutes', ['muter_id', 'created_at'], unique=False, schema='auth')
    op.create_index('ix_mutes_muted', 'mutes', ['muted_id'], unique=False, schema='auth')
    op.execute(sa.schema.CreateSequence(sa.Sequence('relation_versions', schema='auth')))


def downgrade() -> None:
    """Downgrade schema."""
    op.execute(sa.schema.DropSequence(sa.Sequence('relation_versions', schema='auth')))
    op.drop_index('ix_mutes_muted', table_name='mutes', schema='auth')
    op.drop_index('ix_mutes_muter_recent', table_name='mutes', schema='auth')
    op.drop_table('mutes', schema='auth')
    op.drop_index('ix_blocks_blocked', table_name='blocks', schema='auth')
    op.drop_index('ix_blocks_blocker_recent', table_name='blocks', schema='auth')
    op.drop_table('blocks', schema='auth')
