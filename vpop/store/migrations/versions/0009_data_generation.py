"""The data generation: bumped by provisioning, followed by the running workers, which
report the generation they serve.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    state = op.create_table(
        'provisioning_state',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('generation', sa.BigInteger(), nullable=False),
        sa.Column('full_generation', sa.BigInteger(), nullable=False),
        sa.Column('pruned_through', sa.BigInteger(), nullable=False),
        sa.Column('changed_at', _TIME, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_provisioning_state')),
    )
    op.bulk_insert(state, [{"id": 1, "generation": 0, "full_generation": 0,
                            "pruned_through": 0,
                            "changed_at": dt.datetime.now(dt.timezone.utc)}])
    op.create_table(
        'provisioning_change',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('generation', sa.BigInteger(), nullable=False),
        sa.Column('username', sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_provisioning_change')),
    )
    op.create_index(op.f('ix_provisioning_change_generation'), 'provisioning_change',
                    ['generation'], unique=False)
    op.create_table(
        'serving_worker',
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('worker', sa.Integer(), nullable=False),
        sa.Column('generation', sa.BigInteger(), nullable=False),
        sa.Column('started_at', _TIME, nullable=False),
        sa.Column('seen_at', _TIME, nullable=False),
        sa.PrimaryKeyConstraint('host', 'pid', name=op.f('pk_serving_worker')),
    )


def downgrade() -> None:
    op.drop_table('serving_worker')
    op.drop_index(op.f('ix_provisioning_change_generation'), table_name='provisioning_change')
    op.drop_table('provisioning_change')
    op.drop_table('provisioning_state')
