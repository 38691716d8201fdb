"""sweeps and evaluations: sweeps, jobs.sweep_id, evaluations (one per job and checkpoint step), eval_metrics

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 22:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("preset", sa.String(length=64), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sweeps_created_at", "sweeps", ["created_at"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("sweep_id", sa.String(length=32), nullable=True))
        batch.create_index("ix_jobs_sweep_id", ["sweep_id"])
        batch.create_foreign_key("fk_jobs_sweep_id", "sweeps", ["sweep_id"], ["id"], ondelete="SET NULL")
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("prompts", sa.Integer(), nullable=True),
        sa.Column("samples_per_prompt", sa.Integer(), nullable=True),
        sa.Column("held_out", sa.Boolean(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "step", name="uq_evaluations_job_step"),
    )
    op.create_index("ix_evaluations_job_id", "evaluations", ["job_id"])
    op.create_table(
        "eval_metrics",
        sa.Column("eval_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["eval_id"], ["evaluations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("eval_id", "name", name="eval_metrics_pkey"),
    )


def downgrade() -> None:
    op.drop_table("eval_metrics")
    op.drop_index("ix_evaluations_job_id", table_name="evaluations")
    op.drop_table("evaluations")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("fk_jobs_sweep_id", type_="foreignkey")
        batch.drop_index("ix_jobs_sweep_id")
        batch.drop_column("sweep_id")
    op.drop_index("ix_sweeps_created_at", table_name="sweeps")
    op.drop_table("sweeps")
