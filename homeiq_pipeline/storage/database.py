"""Opening the mirror database: engine settings per dialect, write locks and schema migrations.

SQLite (the default) and PostgreSQL are supported and behave the same: the same migrations, the
same tables, one transaction per sync, and never two writers of one instance interleaved.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .encoding import dumps

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


# PostgreSQL advisory locks (transaction-scoped, one 64-bit key each): what BEGIN IMMEDIATE is
# to SQLite, but per instance, so homes sync in parallel while one home's writers queue.
_LOCK_NAMESPACE = "homeiq-pipeline:"
_MIGRATION_LOCK = _LOCK_NAMESPACE + "migrations"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for an in-memory SQLite and for any other database."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).expanduser()


def missing_sqlite_file(url: str) -> bool:
    """Whether `url` names a SQLite file that does not exist yet (opening it would create it).
    A path through something that is not a folder is not "missing": opening it fails, and says why."""
    file = sqlite_file(url)
    if file is None:
        return False
    try:
        file.stat()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


def create_engine(url: str) -> sa.Engine:
    """An engine for any SQLAlchemy URL; SQLite gets WAL, a busy timeout and foreign keys,
    PostgreSQL sessions run in UTC (as SQLite's timestamps are)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        connect_args: dict[str, Any] = {}
        if parsed.get_backend_name() == "postgresql" and "options" not in parsed.query:
            connect_args["options"] = "-c timezone=UTC"
        return sa.create_engine(url, json_serializer=dumps, pool_pre_ping=True, connect_args=connect_args)
    if (file := sqlite_file(url)) is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, json_serializer=dumps)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We emit BEGIN ourselves (below): pysqlite's implicit transactions start too late.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA page_size=16384")  # a new file only: fewer, fuller pages for wide rows
        _enable_wal(cursor)  # readers never block the sync, nor it them
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough in WAL, much faster
        cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB: a large sync stays in memory until commit
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # A writer takes the lock up front, so two syncs queue instead of failing mid-way.
        mode = "IMMEDIATE" if connection.get_execution_options().get("sqlite_immediate") else ""
        connection.exec_driver_sql(f"BEGIN {mode}".strip())

    return engine


def _enable_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the file to WAL (a no-op once it is). Switching needs an exclusive lock, and SQLite
    answers "database is locked" at once, without its busy handler, while another process is
    creating the same new file: wait as the busy timeout would."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def write_transaction(engine: sa.Engine, instance: str | None = None) -> Iterator[sa.Connection]:
    """One transaction that holds the write lock from its start, so two writers queue instead of
    failing or interleaving mid-way.

    SQLite: BEGIN IMMEDIATE (one writer per file). PostgreSQL: a transaction-scoped advisory lock
    on `instance`, so writers of different instances run in parallel (their rows never overlap)
    and writers of one instance take turns; without `instance`, one lock for the whole mirror.
    """
    with engine.connect().execution_options(sqlite_immediate=True) as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            _advisory_lock(connection, _LOCK_NAMESPACE + ("instance:" + instance if instance is not None else "all"))
        yield connection


@contextmanager
def read_snapshot(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection whose reads, however many statements, all see one committed state of the
    mirror: a sync that commits meanwhile does not show. SQLite: one read transaction (WAL keeps
    its snapshot). PostgreSQL: REPEATABLE READ, as its default READ COMMITTED takes a new snapshot
    per statement. (Writers stay READ COMMITTED: they queue on a lock, then must see the rows the
    writer before them committed.)"""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            yield connection


def _advisory_lock(connection: sa.Connection, name: str) -> None:
    """Wait for PostgreSQL's advisory lock `name`, held until the transaction ends (also on a crash)."""
    connection.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(name, 0))))


def _alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str | None:
    """The newest migration's revision."""
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def upgrade(engine: sa.Engine) -> None:
    """Create or upgrade the schema in place to the newest migration."""
    if current_revision(engine) == head_revision():
        return  # the usual case: no lock taken, so opening the mirror never waits for a sync
    # Processes starting together (webserver, daemon, runs) would otherwise all try to create the
    # tables: the write lock comes first (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock),
    # so the others wait, then find the schema at head. DDL is transactional on both: a failed
    # migration leaves the old schema.
    with engine.connect().execution_options(sqlite_immediate=True) as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            _advisory_lock(connection, _MIGRATION_LOCK)
        command.upgrade(_alembic_config(connection), "head")


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def open_database(url: str) -> sa.Engine:
    """Engine for `url` with the schema migrated to the newest version."""
    engine = create_engine(url)
    upgrade(engine)
    return engine


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    return sa.make_url(url).render_as_string(hide_password=True)
