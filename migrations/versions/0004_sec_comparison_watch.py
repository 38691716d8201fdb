"""comparisons: owner, heartbeat and attempts, so the watchdog covers comparisons whose worker died

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 22:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("comparisons", sa.Column("worker", sa.String(255), nullable=True))
    op.add_column("comparisons", sa.Column("heartbeat_at", sa.DateTime(), nullable=True))
    op.add_column("comparisons", sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("comparisons") as batch:
        batch.drop_column("attempts")
        batch.drop_column("heartbeat_at")
        batch.drop_column("worker")
