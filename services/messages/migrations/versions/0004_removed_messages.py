"""removed messages: a message a moderator removed stays as a placeholder without its body

Revision ID: 2707ed51278e
Revises: b9b38cac1109
Create Date: 2026-12-04 18:45:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '2707ed51278e'
down_revision: Union[str, Sequence[str], None] = 'b9b38cac1109'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('messages', sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True), schema='messages')


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('messages', 'deleted_at', schema='messages')
