"""Alembic environment: the URL comes from the caller's config (worker.db.alembic_config), from
``alembic -x url=...``, or from ADRPO_DATABASE_URL via the service settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from worker.db import make_engine
from worker.models import Base

# Any fixed number: PostgreSQL advisory lock so workers starting together migrate one at a time.
MIGRATION_LOCK_ID = 724_053


def database_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from worker.settings import Settings

    return Settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=Base.metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(database_url())
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            connection.commit()
        try:
            context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
                connection.commit()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
