"""Indexes that keep the hot look-ups as fast after years of history as on the first day

Measured on a group with five busy years (18,000 incidents, 90,000 signals, 720,000 messages):
a signal's look-up of its group's unresolved incident read all 18,000 incidents (1.9 ms), the
flood limit's look-up of the sender's recent signals all their signals (1.3 ms), and an answer
(OK, JA n) every message ever sent (0.1 s), each holding SQLite's write lock.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UNRESOLVED = sa.text("state != 'resolved'")


def upgrade() -> None:
    op.drop_index("ix_incidents_state", table_name="incidents")
    op.create_index(
        "ix_incidents_unresolved",
        "incidents",
        ["group_id"],
        sqlite_where=UNRESOLVED,
        postgresql_where=UNRESOLVED,
    )
    op.create_index("ix_incidents_number", "incidents", ["number"])
    # Each composite index leads with the column of the index it replaces (a foreign key).
    op.create_index("ix_signals_member_id_received_at", "signals", ["member_id", "received_at"])
    op.drop_index("ix_signals_member_id", table_name="signals")
    op.create_index(
        "ix_deliveries_incident_id_recipient_phone", "deliveries", ["incident_id", "recipient_phone"]
    )
    op.drop_index("ix_deliveries_incident_id", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_incident_id", "deliveries", ["incident_id"])
    op.drop_index("ix_deliveries_incident_id_recipient_phone", table_name="deliveries")
    op.create_index("ix_signals_member_id", "signals", ["member_id"])
    op.drop_index("ix_signals_member_id_received_at", table_name="signals")
    op.drop_index("ix_incidents_number", table_name="incidents")
    op.drop_index("ix_incidents_unresolved", table_name="incidents")
    op.create_index("ix_incidents_state", "incidents", ["state"])
