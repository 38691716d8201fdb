"""jobs: phase and phase_detail (what a running job is doing: building model, evaluating, training)

Revision ID: 0003_studio
Revises: 0002
Create Date: 2026-12-01 22:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_studio"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("phase", sa.String(32), nullable=True))
        batch.add_column(sa.Column("phase_detail", sa.String(256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("phase_detail")
        batch.drop_column("phase")
