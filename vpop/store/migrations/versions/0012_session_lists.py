"""Indexes for the portal's and the API's session lists: each filter (ISP, lease, NAS,
user name, open or closed) with the start time and id, so a page of sessions, newest
first, is read from an index at any depth (keyset pagination), never by scanning radacct.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (('isp', 'isp'), ('lease_id', 'lease_id'), ('nas_address', 'nas_address'),
            ('username', 'username'), ('status', 'status'))


def upgrade() -> None:
    for name, column in _INDEXES:
        op.create_index(f'ix_radacct_{name}_start_time', 'radacct',
                        [column, 'start_time', 'id'], unique=False)


def downgrade() -> None:
    for name, _ in reversed(_INDEXES):
        op.drop_index(f'ix_radacct_{name}_start_time', table_name='radacct')
