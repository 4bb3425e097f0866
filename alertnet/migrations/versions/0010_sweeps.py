"""sweeps: how far the hourly clean-up has come, so it need not read the whole history again

The clean-up read every message and signal ever stored, holding SQLite's write lock while it
did: 0.19 s an hour after five busy years of one group (810,000 messages), growing with the
history. It now goes on from the ids it finished, kept here.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("after_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sweeps")),
    )


def downgrade() -> None:
    op.drop_table("sweeps")
