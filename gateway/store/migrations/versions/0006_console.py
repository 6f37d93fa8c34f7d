"""operator console: users, sessions, login attempts; alarms and component states kept in the
store (the console is another process); an index for the console's date filter

Revision ID: 0006_console
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_console"
down_revision = "0005_origin"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alarms",
        sa.Column("id", ID, primary_key=True),
        sa.Column("kind", sa.String(60), nullable=False),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("fields", sa.JSON, nullable=True),
        sa.Column("message_id", ID, nullable=True),
        sa.Column("raised_at", TS, nullable=False),
        sa.Column("acked_at", TS, nullable=True),
        sa.Column("acked_by", sa.String(80), nullable=False, server_default=""),
    )
    op.create_index("ix_alarms_open", "alarms", ["acked_at"])
    op.create_table(
        "components",
        sa.Column("name", sa.String(120), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False, server_default=""),
        sa.Column("since", TS, nullable=False),
        sa.Column("seen_at", TS, nullable=False),
    )
    op.create_table(
        "console_users",
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.String(80), nullable=False, unique=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_until", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "console_sessions",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("user_id", ID, sa.ForeignKey("console_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_table(
        "console_login_attempts",
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("client", sa.String(80), nullable=False, server_default=""),
        sa.Column("ok", sa.Integer, nullable=False, server_default="0"),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_login_attempts_client", "console_login_attempts", ["client", "at"])
    op.create_index("ix_messages_created", "messages", ["created_at"])
    op.create_index("ix_messages_type_state", "messages", ["doc_type", "state"])


def downgrade() -> None:
    op.drop_index("ix_messages_type_state", "messages")
    op.drop_index("ix_messages_created", "messages")
    for table in ("console_login_attempts", "console_sessions", "console_users", "components", "alarms"):
        op.drop_table(table)
