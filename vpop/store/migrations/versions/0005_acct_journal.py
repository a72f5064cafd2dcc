"""How far the ledger has applied each accounting journal.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'acct_journal',
        sa.Column('stream', sa.String(length=36), nullable=False),
        sa.Column('applied_id', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('stream', name=op.f('pk_acct_journal')),
    )


def downgrade() -> None:
    op.drop_table('acct_journal')
