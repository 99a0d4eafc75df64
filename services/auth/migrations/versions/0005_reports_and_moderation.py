"""reports and moderation: users' reports and the audit trail of operators' actions

Revision ID: 64a0564bd793
Revises: 5b8e0c3a91d7
Create Date: 2026-12-04 18:45:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision: str = '64a0564bd793'
down_revision: Union[str, Sequence[str], None] = '5b8e0c3a91d7'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('reports',
    sa.Column('id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('reporter_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('target_type', sa.String(length=16), nullable=False),
    sa.Column('target_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('target_owner_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('details', sa.Text(), nullable=True),
    sa.Column('content', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='open', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['reporter_id'], ['auth.users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('reporter_id', 'target_type', 'target_id', name='uq_reports_reporter_target'),
    schema='auth'
    )
    op.create_index('ix_reports_open_created', 'reports', ['created_at', 'id'], unique=False, schema='auth',
                    postgresql_where=sa.text("status = 'open'"))
    op.create_index('ix_reports_target', 'reports', ['target_type', 'target_id'], unique=False, schema='auth')
    op.create_index('ix_reports_target_owner', 'reports', ['target_owner_id'], unique=False, schema='auth')
    op.create_table('moderation_actions',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('report_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('operator', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['auth.reports.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    schema='auth'
    )
    op.create_index('ix_moderation_actions_report', 'moderation_actions', ['report_id', 'created_at'],
                    unique=False, schema='auth')


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_moderation_actions_report', table_name='moderation_actions', schema='auth')
    op.drop_table('moderation_actions', schema='auth')
    op.drop_index('ix_reports_target_owner', table_name='reports', schema='auth')
    op.drop_index('ix_reports_target', table_name='reports', schema='auth')
    op.drop_index('ix_reports_open_created', table_name='reports', schema='auth')
    op.drop_table('reports', schema='auth')
