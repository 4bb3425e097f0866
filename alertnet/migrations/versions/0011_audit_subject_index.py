"""audit_events.subject indexed: an incident's timeline without reading the whole audit log

Showing an incident (and closing one through the API, which answers with it) read every audit
event ever written to find the incident's: 42,000 SQLite steps at 12,000 events, growing with
the history, in the event loop's thread.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_events_subject", "audit_events", ["subject"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_subject", table_name="audit_events")
