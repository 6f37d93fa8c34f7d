"""cluster: message leases (owner, expiry) and the table where each `swgw run` process reports itself

Revision ID: 0008_cluster
Revises: 0007_origin13
"""
import sqlalchemy as sa
from alembic import op

revision = "0008_cluster"
down_revision = "0007_origin13"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("messages", sa.Column("lease_owner", sa.String(120), nullable=False, server_default=""))
    op.add_column("messages", sa.Column("lease_until", TS, nullable=True))
    op.create_table(
        "cluster_members",
        sa.Column("id", sa.String(120), primary_key=True),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("role", sa.String(40), nullable=False, server_default="run"),
        sa.Column("config_hash", sa.String(64), nullable=False, server_default=""),
        sa.Column("leader", sa.Integer, nullable=False, server_default="0"),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("heartbeat_at", TS, nullable=False),
        sa.Column("stopped_at", TS, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("cluster_members")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
