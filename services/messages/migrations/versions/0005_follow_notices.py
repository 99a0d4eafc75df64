"""follow notices: at most one follow notification of each kind a day per pair

Revision ID: 9d4f6a2b7c13
Revises: 2707ed51278e
Create Date: 2026-12-04 18:55:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '9d4f6a2b7c13'
down_revision: Union[str, Sequence[str], None] = '2707ed51278e'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('follow_notices',
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('follower_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('followee_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('notified_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('follower_id', 'followee_id', 'kind'),
    schema='messages'
    )
    op.create_index('ix_follow_notices_followee', 'follow_notices', ['followee_id'], unique=False,
                    schema='messages')


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_follow_notices_followee', table_name='follow_notices', schema='messages')
    op.drop_table('follow_notices', schema='messages')
