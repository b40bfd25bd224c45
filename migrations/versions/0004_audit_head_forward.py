"""Audit chain head: may advance several entries at once (one append per commit), never back.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A commit appends all of its entries in one statement, so the head moves by as many. It
# still never moves back (which would hide entries cut off the end), never changes its id,
# and is never deleted or truncated; an advance past the entries is what verify reports.
FORWARD_ONLY = """
CREATE OR REPLACE FUNCTION audit_chain_head_advance_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id AND NEW.last_seq > OLD.last_seq THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_chain_head only advances: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$
"""

ONE_STEP = """
CREATE OR REPLACE FUNCTION audit_chain_head_advance_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id AND NEW.last_seq = OLD.last_seq + 1 THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_chain_head only advances one entry at a time: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$
"""


def upgrade() -> None:
    """Let the head advance by any positive number of entries."""
    op.execute(FORWARD_ONLY)


def downgrade() -> None:
    """Back to one entry per head update."""
    op.execute(ONE_STEP)
