"""Rooms by capacity: the index the search for other free rooms walks, smallest first.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Index rooms by `(capacity, name, id)`."""
    op.create_index("ix_rooms_capacity_name_id", "rooms", ["capacity", "name", "id"])


def downgrade() -> None:
    """Drop the index."""
    op.drop_index("ix_rooms_capacity_name_id", table_name="rooms")
