"""Throttle scopes: separate counters for logins, current-password checks and trusted devices.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "auth_login_throttles"
PRIMARY_KEY = "pk_auth_login_throttles"


def upgrade() -> None:
    """Existing rows are login counters; the key becomes (user_id, scope)."""
    op.add_column(TABLE, sa.Column("scope", sa.String(48), server_default="login", nullable=False))
    op.alter_column(TABLE, "scope", server_default=None)
    op.drop_constraint(PRIMARY_KEY, TABLE, type_="primary")
    op.create_primary_key(PRIMARY_KEY, TABLE, ["user_id", "scope"])


def downgrade() -> None:
    """Keep only the login counters and key them by user again."""
    op.execute(sa.text("DELETE FROM auth_login_throttles WHERE scope <> 'login'"))
    op.drop_constraint(PRIMARY_KEY, TABLE, type_="primary")
    op.create_primary_key(PRIMARY_KEY, TABLE, ["user_id"])
    op.drop_column(TABLE, "scope")
