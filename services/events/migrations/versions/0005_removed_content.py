"""removed content: an event a moderator removed is hidden from everyone

Revision ID: 0c35bee5145b
Revises: 5d098b9a7b36
Create Date: 2026-12-04 18:45:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0c35bee5145b'
down_revision: Union[str, Sequence[str], None] = '5d098b9a7b36'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('events', sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True), schema='events')


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('events', 'removed_at', schema='events')
