"""Recurring series: the `booking_series` table, and each booking's link to its series.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `booking_series` and `bookings.series_id` (indexed, for a series' occurrences)."""
    op.create_table(
        "booking_series",
        sa.Column("room_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=True),
        sa.Column("attendees", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("rrule", sa.String(length=500), nullable=False),
        sa.Column(
            "exdates",
            postgresql.ARRAY(sa.DateTime(timezone=True)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("starts_at < ends_at", name=op.f("ck_booking_series_range_valid")),
        sa.CheckConstraint("version > 0", name=op.f("ck_booking_series_version_positive")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_booking_series_owner_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_booking_series_room_id_rooms")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_series")),
    )
    op.create_index(
        op.f("ix_booking_series_owner_id"), "booking_series", ["owner_id"], unique=False
    )
    op.add_column("bookings", sa.Column("series_id", sa.Uuid(), nullable=True))
    op.create_index(op.f("ix_bookings_series_id"), "bookings", ["series_id"], unique=False)
    op.create_foreign_key(
        op.f("fk_bookings_series_id_booking_series"),
        "bookings",
        "booking_series",
        ["series_id"],
        ["id"],
    )


def downgrade() -> None:
    """Drop the link, then the table."""
    op.drop_constraint(op.f("fk_bookings_series_id_booking_series"), "bookings", type_="foreignkey")
    op.drop_index(op.f("ix_bookings_series_id"), table_name="bookings")
    op.drop_column("bookings", "series_id")
    op.drop_index(op.f("ix_booking_series_owner_id"), table_name="booking_series")
    op.drop_table("booking_series")
