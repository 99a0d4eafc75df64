"""private accounts and follow requests: users.is_private, users.group_invites, follow_requests

Revision ID: 5b8e0c3a91d7
Revises: 1aad1fbab5e4
Create Date: 2026-12-04 18:40:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '5b8e0c3a91d7'
down_revision: Union[str, Sequence[str], None] = '1aad1fbab5e4'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    # Server defaults: the existing accounts become public and invitable by everyone.
    op.add_column('users', sa.Column('is_private', sa.Boolean(), server_default=sa.false(), nullable=False),
                  schema='auth')
    op.add_column('users', sa.Column('group_invites', sa.String(length=16), server_default='everyone',
                                     nullable=False), schema='auth')
    op.create_table('follow_requests',
    sa.Column('requester_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('owner_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['auth.users.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['requester_id'], ['auth.users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('requester_id', 'owner_id'),
    schema='auth'
    )
    op.create_index('ix_follow_requests_owner_recent', 'follow_requests', ['owner_id', 'created_at'], unique=False,
                    schema='auth')


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_follow_requests_owner_recent', table_name='follow_requests', schema='auth')
    op.drop_table('follow_requests', schema='auth')
    op.drop_column('users', 'group_invites', schema='auth')
    op.drop_column('users', 'is_private', schema='auth')
