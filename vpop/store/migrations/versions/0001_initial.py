"""Initial schema: NAS clients, profiles, subscribers with caller IDs and lines, radacct.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('nas',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('secret', sa.String(length=128), nullable=False),
        sa.Column('nas_type', sa.String(length=32), nullable=False),
        sa.Column('require_message_authenticator', sa.String(length=8), nullable=False),
        sa.Column('description', sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_nas')),
        sa.UniqueConstraint('address', name=op.f('uq_nas_address')),
        sa.UniqueConstraint('name', name=op.f('uq_nas_name'))
    )
    op.create_table('profile',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('rate_down_kbps', sa.Integer(), nullable=True),
        sa.Column('rate_up_kbps', sa.Integer(), nullable=True),
        sa.Column('address_pool', sa.String(length=64), nullable=True),
        sa.Column('session_timeout', sa.Integer(), nullable=True),
        sa.Column('idle_timeout', sa.Integer(), nullable=True),
        sa.Column('class', sa.String(length=64), nullable=True),
        sa.Column('caller_id_login', sa.Boolean(), nullable=False),
        sa.Column('description', sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_profile')),
        sa.UniqueConstraint('name', name=op.f('uq_profile_name'))
    )
    op.create_table('radacct',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('unique_id', sa.String(length=64), nullable=False),
        sa.Column('acct_session_id', sa.String(length=64), nullable=False),
        sa.Column('username', sa.String(length=128), nullable=False),
        sa.Column('nas_address', sa.String(length=64), nullable=False),
        sa.Column('nas_port', sa.String(length=64), nullable=True),
        sa.Column('calling_station_id', sa.String(length=64), nullable=True),
        sa.Column('framed_ip', sa.String(length=45), nullable=True),
        sa.Column('start_time', sa.DateTime(timezone=True), nullable=True),
        sa.Column('update_time', sa.DateTime(timezone=True), nullable=True),
        sa.Column('stop_time', sa.DateTime(timezone=True), nullable=True),
        sa.Column('session_time', sa.Integer(), nullable=False),
        sa.Column('input_octets', sa.BigInteger(), nullable=False),
        sa.Column('output_octets', sa.BigInteger(), nullable=False),
        sa.Column('terminate_cause', sa.String(length=32), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_radacct')),
        sa.UniqueConstraint('unique_id', name=op.f('uq_radacct_unique_id'))
    )
    op.create_table('subscriber',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('username', sa.String(length=128), nullable=False),
        sa.Column('profile_id', sa.Integer(), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('auth_methods', sa.String(length=64), nullable=False),
        sa.Column('password_hash', sa.String(length=160), nullable=True),
        sa.Column('nt_hash', sa.String(length=32), nullable=True),
        sa.Column('cleartext_password', sa.String(length=128), nullable=True),
        sa.Column('framed_ip', sa.String(length=45), nullable=True),
        sa.Column('rate_down_kbps', sa.Integer(), nullable=True),
        sa.Column('rate_up_kbps', sa.Integer(), nullable=True),
        sa.Column('address_pool', sa.String(length=64), nullable=True),
        sa.Column('session_timeout', sa.Integer(), nullable=True),
        sa.Column('idle_timeout', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['profile_id'], ['profile.id'],
                                name=op.f('fk_subscriber_profile_id_profile')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_subscriber')),
        sa.UniqueConstraint('username', name=op.f('uq_subscriber_username'))
    )
    op.create_index(op.f('ix_subscriber_profile_id'), 'subscriber', ['profile_id'])
    op.create_table('subscriber_caller_id',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        sa.Column('number', sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], ondelete='CASCADE',
                                name=op.f('fk_subscriber_caller_id_subscriber_id_subscriber')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_subscriber_caller_id')),
        sa.UniqueConstraint('number', name=op.f('uq_subscriber_caller_id_number'))
    )
    op.create_index(op.f('ix_subscriber_caller_id_subscriber_id'), 'subscriber_caller_id',
                    ['subscriber_id'])
    op.create_table('subscriber_line',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('value', sa.String(length=253), nullable=False),
        sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], ondelete='CASCADE',
                                name=op.f('fk_subscriber_line_subscriber_id_subscriber')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_subscriber_line')),
        sa.UniqueConstraint('kind', 'value', name=op.f('uq_subscriber_line_kind'))
    )
    op.create_index(op.f('ix_subscriber_line_subscriber_id'), 'subscriber_line', ['subscriber_id'])


def downgrade() -> None:
    # Dropping a table drops its indexes; children before parents.
    op.drop_table('subscriber_line')
    op.drop_table('subscriber_caller_id')
    op.drop_table('subscriber')
    op.drop_table('radacct')
    op.drop_table('profile')
    op.drop_table('nas')
