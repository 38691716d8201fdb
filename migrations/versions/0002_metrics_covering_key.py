"""metrics: the PostgreSQL primary key INCLUDEs value (index-only scans for the metrics fetch)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 23:55:00
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite needs nothing: its metrics table is WITHOUT ROWID, already clustered on the key.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE metrics DROP CONSTRAINT metrics_pkey")
        op.execute("ALTER TABLE metrics ADD CONSTRAINT metrics_pkey PRIMARY KEY (job_id, name, step) INCLUDE (value)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE metrics DROP CONSTRAINT metrics_pkey")
        op.execute("ALTER TABLE metrics ADD CONSTRAINT metrics_pkey PRIMARY KEY (job_id, name, step)")
