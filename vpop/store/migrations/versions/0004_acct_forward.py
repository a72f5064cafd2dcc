"""The durable queue of accounting owed to proxy-mode ISPs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'acct_forward',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('isp', sa.String(length=64), nullable=False),
        sa.Column('session_key', sa.String(length=64), nullable=False),
        sa.Column('attrs', sa.LargeBinary(), nullable=False),
        sa.Column('delay', sa.Integer(), nullable=False),
        sa.Column('received_at', sa.Float(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_try', sa.Float(), nullable=False),
        sa.Column('content_hash', sa.String(length=32), nullable=False),
        sa.Column('delivered_at', sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_acct_forward')),
        sa.UniqueConstraint('content_hash', name=op.f('uq_acct_forward_content_hash')),
    )
    op.create_index('ix_acct_forward_next_try', 'acct_forward', ['next_try'])
    op.create_index(op.f('ix_acct_forward_session_key'), 'acct_forward', ['session_key'])


def downgrade() -> None:
    op.drop_index(op.f('ix_acct_forward_session_key'), table_name='acct_forward')
    op.drop_index('ix_acct_forward_next_try', table_name='acct_forward')
    op.drop_table('acct_forward')
