"""deleted users: a follow event handled after a user's deletion adds no edge

Revision ID: 7c1d2e5f9a40
Revises: 2953069306fd
Create Date: 2026-12-02 00:10:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '7c1d2e5f9a40'
down_revision: Union[str, Sequence[str], None] = '2953069306fd'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('deleted_users',
    sa.Column('user_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('user_id'),
    schema='events'
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('deleted_users', schema='events')
