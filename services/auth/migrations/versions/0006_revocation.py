"""revocation: when the owner deleted the account (the row stays as a scrubbed tombstone), and
the time before which every access token of the account is refused

Revision ID: 3f6a9c2e7b15
Revises: 64a0564bd793
Create Date: 2026-12-04 18:50:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '3f6a9c2e7b15'
down_revision: Union[str, Sequence[str], None] = '64a0564bd793'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('users', sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True), schema='auth')
    op.add_column('users', sa.Column('tokens_not_before', sa.DateTime(timezone=True), nullable=True), schema='auth')


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('users', 'tokens_not_before', schema='auth')
    op.drop_column('users', 'deleted_at', schema='auth')
