"""Accounting figures independent of arrival order: per-second gauge levels, event-time
clocks per NAS, when events were recorded; the monitor's running state goes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

_TIME = sa.DateTime(timezone=True)

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'acct_gauge_second',
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('at', _TIME, nullable=False),
        sa.Column('delta', sa.Integer(), nullable=False),
        sa.Column('level', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('kind', 'key', 'at', name=op.f('pk_acct_gauge_second')),
    )
    op.create_table(
        'acct_clock',
        sa.Column('nas', sa.String(length=64), nullable=False),
        sa.Column('newest', _TIME, nullable=False),
        sa.Column('restarted', _TIME, nullable=True),
        sa.PrimaryKeyConstraint('nas', name=op.f('pk_acct_clock')),
    )
    with op.batch_alter_table('utilization_event') as batch:
        batch.add_column(sa.Column('recorded_at', _TIME, nullable=True))
    with op.batch_alter_table('radacct') as batch:
        batch.drop_index('ix_radacct_nas_address_status')
        batch.create_index('ix_radacct_nas_address_status_update_time',
                           ['nas_address', 'status', 'update_time'])
    op.drop_table('lease_condition')


def downgrade() -> None:
    op.create_table(
        'lease_condition',
        sa.Column('lease_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('since', _TIME, nullable=True),
        sa.Column('extreme', sa.BigInteger(), nullable=False),
        sa.Column('mark', _TIME, nullable=True),
        sa.Column('recorded', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['lease_id'], ['lease.id'],
                                name=op.f('fk_lease_condition_lease_id_lease'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('lease_id', 'kind', name=op.f('pk_lease_condition')),
    )
    with op.batch_alter_table('radacct') as batch:
        batch.drop_index('ix_radacct_nas_address_status_update_time')
        batch.create_index('ix_radacct_nas_address_status', ['nas_address', 'status'])
    with op.batch_alter_table('utilization_event') as batch:
        batch.drop_column('recorded_at')
    op.drop_table('acct_clock')
    op.drop_table('acct_gauge_second')
