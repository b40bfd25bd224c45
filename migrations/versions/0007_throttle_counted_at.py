"""Throttle rows remember when their last failure was counted, so `make prune` can forget them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Existing counts start their retention now."""
    op.add_column(
        "auth_login_throttles",
        sa.Column(
            "counted_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )


def downgrade() -> None:
    """Drop the timestamp."""
    op.drop_column("auth_login_throttles", "counted_at")
