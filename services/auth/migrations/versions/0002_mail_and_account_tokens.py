"""mail and account tokens

Accounts that exist when this runs count as not verified: nobody has proved
they read mail at their address yet. They verify with
POST /auth/email/verify/resend and the link it mails.

Revision ID: 7c3e91a4d2b6
Revises: 44a794266c04
Create Date: 2026-12-04 18:45:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '7c3e91a4d2b6'
down_revision: Union[str, Sequence[str], None] = '44a794266c04'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('users', sa.Column('email_verified', sa.Boolean(), server_default=sa.text('false'),
                                     nullable=False), schema='auth')
    op.create_table('account_tokens',
    sa.Column('id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['auth.users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash'),
    schema='auth'
    )
    op.create_index(op.f('ix_auth_account_tokens_user_id'), 'account_tokens', ['user_id'], unique=False, schema='auth')
    op.create_table('outgoing_mail',
    sa.Column('id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('recipient', sa.String(length=254), nullable=False),
    sa.Column('user_id', sa.UUID(as_uuid=False), nullable=True),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['auth.users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    schema='auth'
    )
    op.create_index(op.f('ix_auth_outgoing_mail_user_id'), 'outgoing_mail', ['user_id'], unique=False, schema='auth')


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f('ix_auth_outgoing_mail_user_id'), table_name='outgoing_mail', schema='auth')
    op.drop_table('outgoing_mail', schema='auth')
    op.drop_index(op.f('ix_auth_account_tokens_user_id'), table_name='account_tokens', schema='auth')
    op.drop_table('account_tokens', schema='auth')
    op.drop_column('users', 'email_verified', schema='auth')
