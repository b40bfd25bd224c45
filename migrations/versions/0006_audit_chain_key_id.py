"""Audit chain keyed with HMAC: each entry names the key that signed it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add `key_id`; entries already written stay unkeyed (null)."""
    op.add_column("audit_events", sa.Column("key_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    """Drop `key_id` (keyed entries then no longer verify)."""
    op.drop_column("audit_events", "key_id")
