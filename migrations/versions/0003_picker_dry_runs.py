"""dry_runs: reward dry runs (reference samples scored by each reward of a config)

Revision ID: 0003_picker
Revises: 0003_studio (merged from branch studio; the lead fixes the chain when merging)
Create Date: 2026-12-01 22:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_picker"
down_revision = "0003_studio"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dry_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("num_samples", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("dry_runs")
