"""ISPs with realms, dialled numbers, RADIUS servers, tunnel endpoints and windows; the
QoS series of their servers; the ISP chosen by a subscriber or given by a profile.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHILDREN = ('isp_number', 'isp_realm', 'isp_server', 'isp_tunnel', 'isp_window')


def _isp_id(table: str) -> list:
    return [sa.Column('isp_id', sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint(['isp_id'], ['isp.id'], ondelete='CASCADE',
                                    name=op.f(f'fk_{table}_isp_id_isp'))]


def upgrade() -> None:
    op.create_table('isp',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('mode', sa.String(length=16), nullable=False),
        sa.Column('strip_realm', sa.Boolean(), nullable=False),
        sa.Column('rewrite', sa.String(length=253), nullable=True),
        sa.Column('balance', sa.String(length=16), nullable=False),
        sa.Column('price_per_minute', sa.Numeric(precision=12, scale=6), nullable=False),
        sa.Column('price_per_gb', sa.Numeric(precision=12, scale=6), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('template', sa.String(length=128), nullable=True),
        sa.Column('timeout_reject', sa.Boolean(), nullable=False),
        sa.Column('ranked', sa.Boolean(), nullable=False),
        sa.Column('description', sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_isp')),
        sa.UniqueConstraint('name', name=op.f('uq_isp_name'))
    )
    op.create_table('isp_number',
        sa.Column('id', sa.Integer(), nullable=False),
        *_isp_id('isp_number'),
        sa.Column('number', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_isp_number')),
        sa.UniqueConstraint('number', name=op.f('uq_isp_number_number'))
    )
    op.create_table('isp_realm',
        sa.Column('id', sa.Integer(), nullable=False),
        *_isp_id('isp_realm'),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('pattern', sa.String(length=253), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_isp_realm')),
        sa.UniqueConstraint('kind', 'pattern', name=op.f('uq_isp_realm_kind'))
    )
    op.create_table('isp_server',
        sa.Column('id', sa.Integer(), nullable=False),
        *_isp_id('isp_server'),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('address', sa.String(length=45), nullable=False),
        sa.Column('auth_port', sa.Integer(), nullable=False),
        sa.Column('acct_port', sa.Integer(), nullable=False),
        sa.Column('secret', sa.String(length=128), nullable=False),
        sa.Column('priority', sa.Integer(), nullable=False),
        sa.Column('weight', sa.Integer(), nullable=False),
        sa.Column('require_message_authenticator', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_isp_server')),
        sa.UniqueConstraint('name', name=op.f('uq_isp_server_name'))
    )
    op.create_table('isp_tunnel',
        sa.Column('id', sa.Integer(), nullable=False),
        *_isp_id('isp_tunnel'),
        sa.Column('address', sa.String(length=253), nullable=False),
        sa.Column('password', sa.String(length=255), nullable=True),
        sa.Column('medium', sa.String(length=16), nullable=False),
        sa.Column('assignment_id', sa.String(length=253), nullable=True),
        sa.Column('preference', sa.Integer(), nullable=False),
        sa.Column('client_endpoint', sa.String(length=253), nullable=True),
        sa.Column('client_auth_id', sa.String(length=253), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_isp_tunnel'))
    )
    op.create_table('isp_window',
        sa.Column('id', sa.Integer(), nullable=False),
        *_isp_id('isp_window'),
        sa.Column('weekdays', sa.String(length=13), nullable=False),
        sa.Column('start', sa.Time(), nullable=False),
        sa.Column('end', sa.Time(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_isp_window'))
    )
    for table in _CHILDREN:
        op.create_index(op.f(f'ix_{table}_isp_id'), table, ['isp_id'])

    op.create_table('isp_qos',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('server', sa.String(length=64), nullable=False),
        sa.Column('isp', sa.String(length=64), nullable=False),
        sa.Column('bucket_start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('bucket_seconds', sa.Integer(), nullable=False),
        sa.Column('probes', sa.Integer(), nullable=False),
        sa.Column('probes_lost', sa.Integer(), nullable=False),
        sa.Column('requests', sa.Integer(), nullable=False),
        sa.Column('accepts', sa.Integer(), nullable=False),
        sa.Column('rejects', sa.Integer(), nullable=False),
        sa.Column('timeouts', sa.Integer(), nullable=False),
        sa.Column('invalid', sa.Integer(), nullable=False),
        sa.Column('rtt_p50_ms', sa.Float(), nullable=True),
        sa.Column('rtt_p95_ms', sa.Float(), nullable=True),
        sa.Column('rtt_p99_ms', sa.Float(), nullable=True),
        sa.Column('response_p50_ms', sa.Float(), nullable=True),
        sa.Column('response_p95_ms', sa.Float(), nullable=True),
        sa.Column('response_p99_ms', sa.Float(), nullable=True),
        sa.Column('rtt_histogram', sa.Text(), nullable=False),
        sa.Column('response_histogram', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_isp_qos'))
    )
    op.create_index('ix_isp_qos_seconds_bucket', 'isp_qos', ['bucket_seconds', 'bucket_start'])
    op.create_index('ix_isp_qos_server_bucket', 'isp_qos', ['server', 'bucket_start'])

    # SQLite cannot add a foreign key in place: batch mode rebuilds these tables.
    with op.batch_alter_table('profile') as batch_op:
        batch_op.add_column(sa.Column('isp_id', sa.Integer(), nullable=True))
        # Existing profiles keep today's behaviour: no failover to another ISP.
        batch_op.add_column(sa.Column('isp_failover', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.create_index(batch_op.f('ix_profile_isp_id'), ['isp_id'])
        batch_op.create_foreign_key(batch_op.f('fk_profile_isp_id_isp'), 'isp', ['isp_id'],
                                    ['id'], ondelete='SET NULL')
    with op.batch_alter_table('subscriber') as batch_op:
        batch_op.add_column(sa.Column('isp_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_subscriber_isp_id'), ['isp_id'])
        batch_op.create_foreign_key(batch_op.f('fk_subscriber_isp_id_isp'), 'isp', ['isp_id'],
                                    ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('subscriber') as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_subscriber_isp_id_isp'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_subscriber_isp_id'))
        batch_op.drop_column('isp_id')
    with op.batch_alter_table('profile') as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_profile_isp_id_isp'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_profile_isp_id'))
        batch_op.drop_column('isp_failover')
        batch_op.drop_column('isp_id')
    # Dropping a table drops its indexes; children before parents.
    op.drop_table('isp_qos')
    for table in reversed(_CHILDREN):
        op.drop_table(table)
    op.drop_table('isp')
