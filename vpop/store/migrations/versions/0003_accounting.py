"""Accounting: routing and more on radacct; session history, routing records, leases,
utilization events and the monitor's state, gauges, peaks and rollups.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)


def _lease_id(table: str) -> list:
    return [sa.Column('lease_id', sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint(['lease_id'], ['lease.id'], ondelete='CASCADE',
                                    name=op.f(f'fk_{table}_lease_id_lease'))]


def upgrade() -> None:
    with op.batch_alter_table('radacct') as batch_op:
        batch_op.add_column(sa.Column('called_station_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('framed_ipv6_prefix', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('delegated_ipv6_prefix', sa.String(length=64),
                                      nullable=True))
        batch_op.add_column(sa.Column('isp', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('route_mode', sa.String(length=8), nullable=False,
                                      server_default='local'))
        batch_op.add_column(sa.Column('route_reason', sa.String(length=255), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('lease_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('input_packets', sa.BigInteger(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('output_packets', sa.BigInteger(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('closed_by', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('flags', sa.String(length=255), nullable=False,
                                      server_default=''))
        batch_op.create_index('ix_radacct_nas_address_status', ['nas_address', 'status'])
        batch_op.create_index('ix_radacct_start_time', ['start_time'])
        batch_op.create_index('ix_radacct_status_update_time', ['status', 'update_time'])
    # The defaults only filled the rows already there; the models give every value.
    with op.batch_alter_table('radacct') as batch_op:
        for name in ('route_mode', 'route_reason', 'input_packets', 'output_packets', 'flags'):
            batch_op.alter_column(name, server_default=None)

    op.create_table('acct_record',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('radacct_id', sa.Integer(), nullable=False),
        sa.Column('content_key', sa.BigInteger(), nullable=False),
        sa.Column('status', sa.String(length=8), nullable=False),
        sa.Column('nas_address', sa.String(length=64), nullable=False),
        sa.Column('event_time', _TIME, nullable=False),
        sa.Column('arrival', _TIME, nullable=False),
        sa.Column('delay', sa.Integer(), nullable=False),
        sa.Column('session_time', sa.Integer(), nullable=False),
        sa.Column('input_octets', sa.BigInteger(), nullable=False),
        sa.Column('output_octets', sa.BigInteger(), nullable=False),
        sa.Column('input_packets', sa.BigInteger(), nullable=False),
        sa.Column('output_packets', sa.BigInteger(), nullable=False),
        sa.Column('terminate_cause', sa.String(length=32), nullable=True),
        sa.Column('flags', sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_acct_record')),
        sa.UniqueConstraint('radacct_id', 'content_key', name=op.f('uq_acct_record_radacct_id'))
    )
    op.create_table('routing_record',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('radacct_id', sa.Integer(), nullable=False),
        sa.Column('username', sa.String(length=128), nullable=False),
        sa.Column('isp', sa.String(length=64), nullable=True),
        sa.Column('route_mode', sa.String(length=8), nullable=False),
        sa.Column('route_reason', sa.String(length=255), nullable=False),
        sa.Column('nas_address', sa.String(length=64), nullable=False),
        sa.Column('lease_id', sa.Integer(), nullable=True),
        sa.Column('start_time', _TIME, nullable=False),
        sa.Column('stop_time', _TIME, nullable=False),
        sa.Column('session_time', sa.Integer(), nullable=False),
        sa.Column('input_octets', sa.BigInteger(), nullable=False),
        sa.Column('output_octets', sa.BigInteger(), nullable=False),
        sa.Column('closed_by', sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_routing_record')),
        sa.UniqueConstraint('radacct_id', name=op.f('uq_routing_record_radacct_id'))
    )
    op.create_index('ix_routing_record_stop_time', 'routing_record', ['stop_time'])
    op.create_table('lease',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('isp', sa.String(length=64), nullable=False),
        sa.Column('sessions', sa.Integer(), nullable=True),
        sa.Column('bandwidth_kbps', sa.Integer(), nullable=True),
        sa.Column('volume_bytes', sa.BigInteger(), nullable=True),
        sa.Column('starts', _TIME, nullable=False),
        sa.Column('ends', _TIME, nullable=True),
        sa.Column('price', sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('policy', sa.String(length=8), nullable=False),
        sa.Column('reject_message', sa.String(length=253), nullable=False),
        sa.Column('under_percent', sa.Integer(), nullable=False),
        sa.Column('under_window', sa.Integer(), nullable=False),
        sa.Column('description', sa.String(length=255), nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_lease')),
        sa.UniqueConstraint('name', name=op.f('uq_lease_name'))
    )
    op.create_table('lease_place',
        sa.Column('id', sa.Integer(), nullable=False),
        *_lease_id('lease_place'),
        sa.Column('nas', sa.String(length=64), nullable=False),
        sa.Column('port_first', sa.BigInteger(), nullable=True),
        sa.Column('port_last', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_lease_place')),
        sa.UniqueConstraint('lease_id', 'nas', 'port_first', name=op.f('uq_lease_place_lease_id'))
    )
    op.create_table('lease_condition',
        *_lease_id('lease_condition'),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('since', _TIME, nullable=True),
        sa.Column('extreme', sa.BigInteger(), nullable=False),
        sa.Column('mark', _TIME, nullable=True),
        sa.Column('recorded', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('lease_id', 'kind', name=op.f('pk_lease_condition'))
    )
    op.create_table('utilization_event',
        sa.Column('id', sa.Integer(), nullable=False),
        *_lease_id('utilization_event'),
        sa.Column('isp', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('start_time', _TIME, nullable=False),
        sa.Column('end_time', _TIME, nullable=True),
        sa.Column('peak', sa.BigInteger(), nullable=False),
        sa.Column('limit_value', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_utilization_event')),
        sa.UniqueConstraint('lease_id', 'kind', 'start_time',
                            name=op.f('uq_utilization_event_lease_id'))
    )
    op.create_index('ix_utilization_event_start_time', 'utilization_event', ['start_time'])
    op.create_table('acct_gauge',
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('level', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('kind', 'key', name=op.f('pk_acct_gauge'))
    )
    op.create_table('acct_peak',
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('grain', sa.String(length=8), nullable=False),
        sa.Column('bucket', _TIME, nullable=False),
        sa.Column('peak', sa.Integer(), nullable=False),
        sa.Column('last', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('kind', 'key', 'grain', 'bucket', name=op.f('pk_acct_peak'))
    )
    op.create_table('acct_rollup',
        sa.Column('grain', sa.String(length=8), nullable=False),
        sa.Column('bucket', _TIME, nullable=False),
        sa.Column('isp', sa.String(length=64), nullable=False),
        sa.Column('lease_id', sa.Integer(), nullable=False),
        sa.Column('nas', sa.String(length=64), nullable=False),
        sa.Column('starts', sa.Integer(), nullable=False),
        sa.Column('stops', sa.Integer(), nullable=False),
        sa.Column('session_seconds', sa.BigInteger(), nullable=False),
        sa.Column('input_octets', sa.BigInteger(), nullable=False),
        sa.Column('output_octets', sa.BigInteger(), nullable=False),
        sa.Column('records', sa.Integer(), nullable=False),
        sa.Column('flagged', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('grain', 'bucket', 'isp', 'lease_id', 'nas',
                                name=op.f('pk_acct_rollup'))
    )
    op.create_table('lease_rollup',
        sa.Column('lease_id', sa.Integer(), nullable=False),
        sa.Column('grain', sa.String(length=8), nullable=False),
        sa.Column('bucket', _TIME, nullable=False),
        sa.Column('octets', sa.BigInteger(), nullable=False),
        sa.Column('peak_5min_octets', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('lease_id', 'grain', 'bucket', name=op.f('pk_lease_rollup'))
    )


def downgrade() -> None:
    # Dropping a table drops its indexes; children before parents.
    for table in ('lease_rollup', 'acct_rollup', 'acct_peak', 'acct_gauge', 'utilization_event',
                  'lease_condition', 'lease_place', 'lease', 'routing_record', 'acct_record'):
        op.drop_table(table)
    with op.batch_alter_table('radacct') as batch_op:
        batch_op.drop_index('ix_radacct_status_update_time')
        batch_op.drop_index('ix_radacct_start_time')
        batch_op.drop_index('ix_radacct_nas_address_status')
        for name in ('flags', 'closed_by', 'output_packets', 'input_packets', 'lease_id',
                     'route_reason', 'route_mode', 'isp', 'delegated_ipv6_prefix',
                     'framed_ipv6_prefix', 'called_station_id'):
            batch_op.drop_column(name)
