"""Alembic migrations of the job store (applied by worker.db.upgrade)."""
