"""attachments carried with a message (随附单据, 佐证材料, 合同/附件); the enterprise an inspection
order names when no message matches it

Revision ID: 0005_origin
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0005_origin"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "message_attachments",
        sa.Column("id", ID, primary_key=True),
        sa.Column("message_id", ID, sa.ForeignKey("messages.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("code", sa.String(20), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("carried_as", sa.String(100), nullable=False),
        sa.Column("media_type", sa.String(60), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=True),
    )
    op.create_index("ix_message_attachments_message", "message_attachments", ["message_id"])
    op.add_column("receipts", sa.Column("enterprise", sa.String(40), nullable=False, server_default=""))
    op.create_table(
        "ccpit_filings",
        sa.Column("id", ID, primary_key=True),
        sa.Column("filing_no", sa.String(32), nullable=False, unique=True),
        sa.Column("enterprise", sa.String(40), nullable=False, server_default=""),
        sa.Column("hs_code", sa.String(10), nullable=False, server_default=""),
        sa.Column("name_en", sa.String(200), nullable=False, server_default=""),
        sa.Column("areas", sa.JSON, nullable=True),
        sa.Column("source", sa.String(60), nullable=False, server_default=""),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "sync_requests",
        sa.Column("id", ID, primary_key=True),
        sa.Column("request_id", sa.String(32), nullable=False, unique=True),
        sa.Column("sync_type", sa.String(20), nullable=False),
        sa.Column("enterprise", sa.String(40), nullable=False),
        sa.Column("requested_by", sa.String(60), nullable=False, server_default=""),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("detail", sa.String(500), nullable=False, server_default=""),
        sa.Column("cop_msg_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sync_requests")
    op.drop_table("ccpit_filings")
    op.drop_column("receipts", "enterprise")
    op.drop_index("ix_message_attachments_message", "message_attachments")
    op.drop_table("message_attachments")
