"""evaluations: heartbeat and attempts, so the watchdog re-queues an eval whose worker died

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 16:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("evaluations", sa.Column("heartbeat_at", sa.DateTime(), nullable=True))
    op.add_column("evaluations", sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.drop_column("attempts")
        batch.drop_column("heartbeat_at")
