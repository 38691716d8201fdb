"""Engine, sessions and migrations of the job store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import CursorResult, Engine, Executable, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

Row = TypeVar("Row")

# The Alembic scripts live in the top-level ``migrations/`` folder beside ``worker/`` (a package of their
# own, installed next to this one; pyproject's package-data carries script.py.mako). They are located, not
# imported: migrations/env.py imports worker, and the arrow must not run back.
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(database_url: str) -> Engine:
    """An engine for ``database_url``; SQLite gets WAL and a busy timeout because the web process and a
    worker process write the same file."""
    if database_url.startswith("sqlite"):
        _ensure_sqlite_parent(database_url)
        engine = create_engine(database_url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(database_url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _ensure_sqlite_parent(database_url: str) -> None:
    path = database_url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def rows_changed(session: Session, statement: Executable) -> int:
    """How many rows an UPDATE or DELETE touched: the claim and hand-back steps compare it with 1.

    ``Session.execute`` is typed as returning ``Result``; for DML it is a ``CursorResult``, which has the count."""
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def existing(session: Session, model: type[Row], key: str) -> Row:
    """The row with primary key ``key``, which the caller knows exists (it was just claimed or written)."""
    row = session.get(model, key)
    if row is None:
        raise LookupError(f"{model.__name__} {key} is not in the store")
    return row


class Store:
    """An engine and its session factory; one per process (web, worker)."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.engine = make_engine(database_url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose work is one transaction: committed on success, rolled back on error."""
        with self.sessions() as session, session.begin():
            yield session

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name


def alembic_config(database_url: str) -> Config:
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise RuntimeError(f"the migrations folder is missing: {MIGRATIONS_DIR}/env.py (reinstall the package)")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply the migrations (idempotent; run by `adrpo serve`, `adrpo worker` and `adrpo db upgrade`)."""
    if database_url.startswith("sqlite"):
        _ensure_sqlite_parent(database_url)
    command.upgrade(alembic_config(database_url), revision)
