"""initial schema: intake files, messages, keys, append-only events, receipts

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "intake_files",
        sa.Column("id", ID, primary_key=True),
        sa.Column("doc_type", sa.String(40), nullable=False),
        sa.Column("source", sa.String(400), nullable=False),
        sa.Column("name", sa.String(400), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("report", sa.JSON, nullable=True),
        sa.Column("received_at", TS, nullable=False),
    )
    op.create_index("ix_intake_hash", "intake_files", ["doc_type", "sha256"])
    op.create_table(
        "messages",
        sa.Column("id", ID, primary_key=True),
        sa.Column("doc_type", sa.String(40), nullable=False),
        sa.Column("enterprise", sa.String(40), nullable=False),
        sa.Column("business_key", sa.String(100), nullable=False),
        sa.Column("cop_msg_id", sa.String(64), nullable=False, unique=True),
        sa.Column("state", sa.String(40), nullable=False),
        sa.Column("intake_file_id", ID, sa.ForeignKey("intake_files.id"), nullable=True),
        sa.Column("source_ref", sa.String(400), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("document", sa.LargeBinary, nullable=True),
        sa.Column("envelope", sa.LargeBinary, nullable=True),
        sa.Column("errors", sa.JSON, nullable=True),
        sa.Column("signer", sa.String(60), nullable=False),
        sa.Column("transport", sa.String(60), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_receipt", sa.String(300), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_messages_state", "messages", ["state"])
    op.create_index("ix_messages_key", "messages", ["doc_type", "enterprise", "business_key"])
    op.create_table(
        "message_keys",
        sa.Column("id", ID, primary_key=True),
        sa.Column("message_id", ID, sa.ForeignKey("messages.id"), nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("value", sa.String(100), nullable=False),
        sa.UniqueConstraint("message_id", "name", "value"),
    )
    op.create_index("ix_message_keys_value", "message_keys", ["value"])
    op.create_table(
        "events",
        sa.Column("id", ID, primary_key=True),
        sa.Column("message_id", ID, sa.ForeignKey("messages.id"), nullable=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("from_state", sa.String(40), nullable=False),
        sa.Column("to_state", sa.String(40), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_events_message", "events", ["message_id"])
    op.create_table(
        "receipts",
        sa.Column("id", ID, primary_key=True),
        sa.Column("message_id", ID, sa.ForeignKey("messages.id"), nullable=True),
        sa.Column("transport", sa.String(60), nullable=False),
        sa.Column("remote_name", sa.String(400), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("doc_type", sa.String(40), nullable=False),
        sa.Column("summary", sa.String(500), nullable=False),
        sa.Column("fields", sa.JSON, nullable=True),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("routed_at", TS, nullable=True),
    )
    op.create_index("ix_receipts_routed", "receipts", ["routed_at"])
    _append_only_events()


def _append_only_events() -> None:
    """The audit trail refuses UPDATE and DELETE at the database itself."""
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER events_no_{action.lower()} BEFORE {action} ON events "
                f"BEGIN SELECT RAISE(ABORT, 'events are append-only'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION events_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'events are append-only'; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
            "FOR EACH ROW EXECUTE FUNCTION events_append_only()"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS events_append_only ON events")
        op.execute("DROP FUNCTION IF EXISTS events_append_only()")
    for table in ("receipts", "events", "message_keys", "messages", "intake_files"):
        op.drop_table(table)
