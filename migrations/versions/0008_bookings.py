"""Bookings: rooms, and one table for bookings and blackouts with the no-overlap constraint.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column[Any]]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def _create_rooms() -> None:
    op.create_table(
        "rooms",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "description", sa.String(length=2000), server_default=sa.text("''"), nullable=False
        ),
        sa.Column("building", sa.String(length=100), nullable=False),
        sa.Column("floor", sa.String(length=32), nullable=True),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column(
            "amenities",
            postgresql.ARRAY(sa.String(length=32)),
            server_default=sa.text("'{}'::character varying[]"),
            nullable=False,
        ),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "policy", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        *_timestamps(),
        sa.CheckConstraint("capacity > 0", name=op.f("ck_rooms_capacity_positive")),
        sa.CheckConstraint("version > 0", name=op.f("ck_rooms_version_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rooms")),
    )
    # Names are unique whatever their case.
    op.create_index("uq_rooms_lower_name", "rooms", [sa.text("lower(name)")], unique=True)
    op.create_index("ix_rooms_name_id", "rooms", ["name", "id"])
    op.create_index("ix_rooms_building_floor", "rooms", ["building", "floor"])
    op.create_index("ix_rooms_amenities", "rooms", ["amenities"], postgresql_using="gin")


def _create_bookings() -> None:
    op.create_table(
        "bookings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("room_id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind", sa.String(length=16), server_default=sa.text("'booking'"), nullable=False
        ),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=True),
        sa.Column("attendees", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "during",
            postgresql.TSTZRANGE(),
            sa.Computed("tstzrange(starts_at, ends_at, '[)')", persisted=True),
            nullable=False,
        ),
        sa.Column(
            "blocked",
            postgresql.TSTZRANGE(),
            sa.Computed("tstzrange(starts_at, blocked_until, '[)')", persisted=True),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_by", sa.Uuid(), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_reason", sa.String(length=500), nullable=True),
        sa.Column(
            "rules_overridden", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        *_timestamps(),
        sa.CheckConstraint("kind IN ('booking', 'blackout')", name=op.f("ck_bookings_kind_known")),
        sa.CheckConstraint(
            "status IN ('pending', 'confirmed', 'rejected', 'cancelled')",
            name=op.f("ck_bookings_status_known"),
        ),
        sa.CheckConstraint("attendees >= 0", name=op.f("ck_bookings_attendees_not_negative")),
        sa.CheckConstraint("version > 0", name=op.f("ck_bookings_version_positive")),
        sa.CheckConstraint(
            "starts_at < ends_at AND ends_at <= blocked_until "
            "AND isfinite(starts_at) AND isfinite(blocked_until)",
            name=op.f("ck_bookings_range_valid"),
        ),
        sa.CheckConstraint(
            "kind = 'booking' OR (attendees = 0 AND blocked_until = ends_at)",
            name=op.f("ck_bookings_blackout_shape"),
        ),
        # btree_gist (0001) lets the gist index compare room_id with `=`.
        postgresql.ExcludeConstraint(
            (sa.column("room_id"), "="),
            (sa.column("blocked"), "&&"),
            where=sa.text("status IN ('pending', 'confirmed')"),
            using="gist",
            name="bookings_no_overlap",
        ),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], name=op.f("fk_bookings_room_id_rooms")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_bookings_owner_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["users.id"], name=op.f("fk_bookings_decided_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["cancelled_by"], ["users.id"], name=op.f("fk_bookings_cancelled_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookings")),
    )
    op.create_index(
        "ix_bookings_owner_id_starts_at_id", "bookings", ["owner_id", "starts_at", "id"]
    )
    op.create_index("ix_bookings_room_id_starts_at_id", "bookings", ["room_id", "starts_at", "id"])
    op.create_index("ix_bookings_starts_at_id", "bookings", ["starts_at", "id"])


def upgrade() -> None:
    """Create the rooms and bookings tables with their constraints and indexes."""
    _create_rooms()
    _create_bookings()


def downgrade() -> None:
    """Drop both tables (their indexes and constraints go with them), bookings first."""
    op.drop_table("bookings")
    op.drop_table("rooms")
