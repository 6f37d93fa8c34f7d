"""receipt lifecycle: transmit retries, deadlines, resends, pruned payloads, subscriptions
(+ deliveries waiting for a queue), jobs

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("messages", sa.Column("next_attempt_at", TS, nullable=True))
    op.add_column("messages", sa.Column("transmit_failures", sa.Integer, nullable=False, server_default="0"))
    op.add_column("messages", sa.Column("sent_at", TS, nullable=True))
    op.add_column("messages", sa.Column("overdue", sa.String(40), nullable=False, server_default=""))
    op.add_column("messages", sa.Column("overdue_since", TS, nullable=True))
    op.add_column("messages", sa.Column("resends", sa.Integer, nullable=False, server_default="0"))
    op.add_column("messages", sa.Column("pruned_at", TS, nullable=True))
    op.add_column("receipts", sa.Column("pruned_at", TS, nullable=True))
    op.create_index("ix_messages_overdue", "messages", ["overdue"])
    # what was sent before this revision: its send time is the last state change
    op.execute("UPDATE messages SET sent_at = updated_at WHERE state = 'sent'")
    op.create_table(
        "subscriptions",
        sa.Column("id", ID, primary_key=True),
        sa.Column("business_key", sa.String(100), nullable=False, server_default=""),
        sa.Column("enterprise", sa.String(40), nullable=False, server_default=""),
        sa.Column("operator", sa.String(60), nullable=False, server_default=""),
        sa.Column("kinds", sa.String(300), nullable=False, server_default=""),
        sa.Column("folder", sa.String(500), nullable=False, server_default=""),
        sa.Column("queue", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "subscription_pending",
        sa.Column("id", ID, primary_key=True),
        sa.Column("subscription_id", ID, nullable=False),
        sa.Column("receipt_id", ID, sa.ForeignKey("receipts.id"), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(500), nullable=False, server_default=""),
        sa.Column("next_attempt_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("subscription_id", "receipt_id"),
    )
    # APScheduler 3.x SQLAlchemyJobStore's table (it would create it itself; here it is in
    # the schema history like every other table)
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(191), primary_key=True),
        sa.Column("next_run_time", sa.Float(25), index=True),
        sa.Column("job_state", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("apscheduler_jobs")
    op.drop_table("subscription_pending")
    op.drop_table("subscriptions")
    op.drop_index("ix_messages_overdue", "messages")
    with op.batch_alter_table("receipts") as b:
        b.drop_column("pruned_at")
    with op.batch_alter_table("messages") as b:
        for col in ("pruned_at", "resends", "overdue_since", "overdue", "sent_at", "transmit_failures",
                    "next_attempt_at"):
            b.drop_column(col)
