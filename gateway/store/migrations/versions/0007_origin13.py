"""同步企业信息: the enterprise's CCPIT registration data and registered signatories (手签员)

Revision ID: 0007_origin13
Revises: 0006_console
"""
import sqlalchemy as sa
from alembic import op

revision = "0007_origin13"
down_revision = "0006_console"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "ccpit_profiles",
        sa.Column("id", ID, primary_key=True),
        sa.Column("enterprise", sa.String(40), nullable=False, unique=True),
        sa.Column("ent_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("address", sa.String(400), nullable=False, server_default=""),
        sa.Column("signatories", sa.JSON, nullable=True),
        sa.Column("source", sa.String(60), nullable=False, server_default=""),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ccpit_profiles")
