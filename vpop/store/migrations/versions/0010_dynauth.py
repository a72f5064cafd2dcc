"""Dynamic authorization: each NAS's CoA/Disconnect endpoint, the ISPs' dynamic-
authorization clients, the audit of every request, and a session's mark after one.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('nas') as batch:
        batch.add_column(sa.Column('das_address', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('das_port', sa.Integer(), nullable=False,
                                   server_default='3799'))
        batch.add_column(sa.Column('das_secret', sa.String(length=128), nullable=True))
    with op.batch_alter_table('radacct') as batch:
        batch.add_column(sa.Column('dynauth_state', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('dynauth_at', _TIME, nullable=True))
    op.create_index('ix_radacct_dynauth_state', 'radacct', ['dynauth_state'], unique=False)
    op.create_table(
        'isp_dynauth_client',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('isp_id', sa.Integer(), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('secret', sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(['isp_id'], ['isp.id'],
                                name=op.f('fk_isp_dynauth_client_isp_id_isp'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_isp_dynauth_client')),
        sa.UniqueConstraint('address', name=op.f('uq_isp_dynauth_client_address')),
    )
    op.create_index(op.f('ix_isp_dynauth_client_isp_id'), 'isp_dynauth_client', ['isp_id'],
                    unique=False)
    op.create_table(
        'dynauth_action',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', _TIME, nullable=False),
        sa.Column('actor', sa.String(length=128), nullable=False),
        sa.Column('direction', sa.String(length=16), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('session_id', sa.Integer(), nullable=True),
        sa.Column('username', sa.String(length=128), nullable=False),
        sa.Column('nas', sa.String(length=64), nullable=False),
        sa.Column('isp', sa.String(length=64), nullable=True),
        sa.Column('sent', sa.Text(), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('error_cause', sa.Integer(), nullable=True),
        sa.Column('reason', sa.String(length=255), nullable=False),
        sa.Column('answer', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_dynauth_action')),
    )
    op.create_index('ix_dynauth_action_at', 'dynauth_action', ['at'], unique=False)
    op.create_index('ix_dynauth_action_nas_direction_outcome', 'dynauth_action',
                    ['nas', 'direction', 'outcome'], unique=False)
    op.create_index(op.f('ix_dynauth_action_session_id'), 'dynauth_action', ['session_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_dynauth_action_session_id'), table_name='dynauth_action')
    op.drop_index('ix_dynauth_action_nas_direction_outcome', table_name='dynauth_action')
    op.drop_index('ix_dynauth_action_at', table_name='dynauth_action')
    op.drop_table('dynauth_action')
    op.drop_index(op.f('ix_isp_dynauth_client_isp_id'), table_name='isp_dynauth_client')
    op.drop_table('isp_dynauth_client')
    op.drop_index('ix_radacct_dynauth_state', table_name='radacct')
    with op.batch_alter_table('radacct') as batch:
        batch.drop_column('dynauth_at')
        batch.drop_column('dynauth_state')
    with op.batch_alter_table('nas') as batch:
        batch.drop_column('das_secret')
        batch.drop_column('das_port')
        batch.drop_column('das_address')
