"""Stream tickets: single-use, short-lived tickets that open one booking event stream.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the table, keyed by the ticket's hash, with its session and expiry indexes."""
    op.create_table(
        "auth_stream_tickets",
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["auth_sessions.id"],
            name=op.f("fk_auth_stream_tickets_session_id_auth_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_auth_stream_tickets_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_auth_stream_tickets")),
    )
    op.create_index("ix_auth_stream_tickets_session_id", "auth_stream_tickets", ["session_id"])
    op.create_index("ix_auth_stream_tickets_expires_at", "auth_stream_tickets", ["expires_at"])


def downgrade() -> None:
    """Drop the table and its indexes."""
    op.drop_index("ix_auth_stream_tickets_expires_at", table_name="auth_stream_tickets")
    op.drop_index("ix_auth_stream_tickets_session_id", table_name="auth_stream_tickets")
    op.drop_table("auth_stream_tickets")
