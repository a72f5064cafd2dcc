"""Each upstream server's state as the proxy last set it, stored when it changes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'isp_server_state',
        sa.Column('server', sa.String(length=64), nullable=False),
        sa.Column('isp', sa.String(length=64), nullable=False),
        sa.Column('state', sa.String(length=8), nullable=False),
        sa.Column('since', sa.DateTime(timezone=True), nullable=False),
        sa.Column('reason', sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint('server', name=op.f('pk_isp_server_state')),
    )


def downgrade() -> None:
    op.drop_table('isp_server_state')
