"""What a forwarded accounting record was last sent as, for a byte-identical resend.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('acct_forward') as batch_op:
        batch_op.add_column(sa.Column('server', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('datagram', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('built_at', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('source_port', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('acct_forward') as batch_op:
        batch_op.drop_column('source_port')
        batch_op.drop_column('built_at')
        batch_op.drop_column('datagram')
        batch_op.drop_column('server')
