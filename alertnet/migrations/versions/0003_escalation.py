"""escalation

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "answers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("incident_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("responder_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_answers_incident_id_incidents")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_answers_member_id_members"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["responder_id"],
            ["responders.id"],
            name=op.f("fk_answers_responder_id_responders"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_answers")),
    )
    with op.batch_alter_table("answers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_answers_incident_id"), ["incident_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_answers_member_id"), ["member_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_answers_responder_id"), ["responder_id"], unique=False)

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("escalation_round", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("escalation_step", sa.Integer(), nullable=True))

    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reporters", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("urgent", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("version", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("escalation_round", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("escalation_step", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("responder_ack_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("exhausted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("resolution", sa.String(length=16), nullable=True))

    with op.batch_alter_table("timers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("round", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_index("ix_timers_pending", ["fired_at", "due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("timers", schema=None) as batch_op:
        batch_op.drop_index("ix_timers_pending")
        batch_op.drop_column("round")

    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("resolution")
        batch_op.drop_column("exhausted_at")
        batch_op.drop_column("responder_ack_at")
        batch_op.drop_column("escalation_step")
        batch_op.drop_column("escalation_round")
        batch_op.drop_column("version")
        batch_op.drop_column("urgent")
        batch_op.drop_column("reporters")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("escalation_step")
        batch_op.drop_column("escalation_round")

    with op.batch_alter_table("answers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_answers_responder_id"))
        batch_op.drop_index(batch_op.f("ix_answers_member_id"))
        batch_op.drop_index(batch_op.f("ix_answers_incident_id"))

    op.drop_table("answers")
