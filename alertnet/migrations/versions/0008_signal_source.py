"""signals.source: the flood limit and repeat guard of a device's signals

An API signal with no member behind it was never flood-limited: a leaked source token could
alert a group without end. The signal now records who sent it, and such signals are limited
by that.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=80), nullable=True))
        batch_op.create_index(
            "ix_signals_source",
            ["group_id", "source", "received_at"],
            unique=False,
            sqlite_where=sa.text("member_id IS NULL"),
            postgresql_where=sa.text("member_id IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.drop_index("ix_signals_source")
        batch_op.drop_column("source")
