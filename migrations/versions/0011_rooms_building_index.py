"""Rooms by building in list order: the room list's `location` filter, any case.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Replace the `(building, floor)` index by `(lower(building), name, id)`."""
    op.drop_index("ix_rooms_building_floor", table_name="rooms")
    op.create_index(
        "ix_rooms_lower_building_name_id", "rooms", [sa.text("lower(building)"), "name", "id"]
    )


def downgrade() -> None:
    """Back to the `(building, floor)` index."""
    op.drop_index("ix_rooms_lower_building_name_id", table_name="rooms")
    op.create_index("ix_rooms_building_floor", "rooms", ["building", "floor"])
