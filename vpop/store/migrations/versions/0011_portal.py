"""The web portal: admin and ISP-operator accounts, the audit of changes made through
the portal, and the JSON API's tokens.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)


def _isp_column() -> sa.Column:
    return sa.Column('isp_id', sa.Integer(), nullable=True)


def upgrade() -> None:
    op.create_table(
        'portal_user',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        _isp_column(),
        sa.Column('password_hash', sa.String(length=255), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('created', _TIME, nullable=False),
        sa.Column('last_login', _TIME, nullable=True),
        sa.ForeignKeyConstraint(['isp_id'], ['isp.id'],
                                name=op.f('fk_portal_user_isp_id_isp'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_user')),
        sa.UniqueConstraint('name', name=op.f('uq_portal_user_name')),
    )
    op.create_index(op.f('ix_portal_user_isp_id'), 'portal_user', ['isp_id'], unique=False)
    op.create_table(
        'portal_audit',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', _TIME, nullable=False),
        sa.Column('actor', sa.String(length=160), nullable=False),
        _isp_column(),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('object', sa.String(length=255), nullable=False),
        sa.Column('before', sa.JSON(), nullable=True),
        sa.Column('after', sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_audit')),
    )
    op.create_index('ix_portal_audit_at', 'portal_audit', ['at'], unique=False)
    op.create_index(op.f('ix_portal_audit_isp_id'), 'portal_audit', ['isp_id'], unique=False)
    op.create_table(
        'api_token',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('scope', sa.String(length=16), nullable=False),
        _isp_column(),
        sa.Column('created_by', sa.String(length=160), nullable=False),
        sa.Column('created', _TIME, nullable=False),
        sa.Column('last_used', _TIME, nullable=True),
        sa.Column('revoked', _TIME, nullable=True),
        sa.ForeignKeyConstraint(['isp_id'], ['isp.id'],
                                name=op.f('fk_api_token_isp_id_isp'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_token')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_api_token_token_hash')),
    )
    op.create_index(op.f('ix_api_token_isp_id'), 'api_token', ['isp_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_api_token_isp_id'), table_name='api_token')
    op.drop_table('api_token')
    op.drop_index(op.f('ix_portal_audit_isp_id'), table_name='portal_audit')
    op.drop_index('ix_portal_audit_at', table_name='portal_audit')
    op.drop_table('portal_audit')
    op.drop_index(op.f('ix_portal_user_isp_id'), table_name='portal_user')
    op.drop_table('portal_user')
