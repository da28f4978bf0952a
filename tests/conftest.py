"""Shared fixtures: a fake HA serving the recording of a real HA 2025.4.4, and a fresh mirror.

The mirror fixtures (`db_url`, `engine`) run every fast-tier test twice: on SQLite and on a real
PostgreSQL server that this test run starts itself (tests/postgres.py), a fresh database per test.
The marked tiers (real_ha, e2e, container) use SQLite here; they start their own servers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from homeiq_pipeline import homeassistant as ha
from homeiq_pipeline import storage
from homeiq_pipeline.demo.server import FakeHomeAssistant

from .postgres import PostgresServer, postgres_server
from .servers import missing

TOKEN = "test-token-0123456789abcdef"
DATABASES = ("sqlite", "postgresql")
SLOW_TIERS = ("real_ha", "e2e", "container")


def at_once(function: Callable[[Any], object], arguments: Sequence[Any], timeout: float = 60) -> list[object]:
    """`function` on each argument, each in its own thread, all started together: what each
    returned, or the exception it raised (for the test to assert on)."""
    with ThreadPoolExecutor(len(arguments)) as pool:
        futures = [pool.submit(function, argument) for argument in arguments]
        return [future.exception(timeout) or future.result() for future in futures]


@pytest.fixture
def fake_ha() -> Iterator[FakeHomeAssistant]:
    with FakeHomeAssistant(token=TOKEN) as server:
        yield server


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every fast-tier test that uses the mirror runs once per database."""
    if "database" in metafunc.fixturenames and not any(
        metafunc.definition.get_closest_marker(tier) for tier in SLOW_TIERS
    ):
        metafunc.parametrize("database", DATABASES, indirect=True)


@pytest.fixture
def database(request: pytest.FixtureRequest) -> str:
    """Which database the mirror fixtures use: "sqlite" or "postgresql"."""
    return getattr(request, "param", "sqlite")


_server_error: list[str] = []


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole session (only started if a test asks for it)."""
    if _server_error:
        missing(_server_error[0])
    try:
        with postgres_server() as server:
            yield server
            return
    except (FileNotFoundError, RuntimeError, OSError, psycopg.Error) as exc:
        _server_error.append(f"PostgreSQL could not be started: {exc}")
    missing(_server_error[0])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _server_error:  # loud: the PostgreSQL half of the database tests did not run
        terminalreporter.write_sep("!", f"PostgreSQL variants NOT run: {_server_error[0]}", red=True)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file that does not exist yet (for what only SQLite has: WAL, file bytes)."""
    return f"sqlite:///{tmp_path / 'mirror.db'}"


@pytest.fixture
def db_url(database: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty mirror database (no tables yet) of the test's database kind."""
    if database == "sqlite":
        yield f"sqlite:///{tmp_path / 'mirror.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = server.create_database()
    yield server.url(name)
    server.drop_database(name)


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """An empty PostgreSQL database, for what only PostgreSQL has (per-instance write locks)."""
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = storage.open_database(db_url)
    yield engine
    engine.dispose()


def fetch(server: FakeHomeAssistant, **client_options: object) -> ha.Snapshot:
    with ha.HomeAssistantClient(server.url, TOKEN, **client_options) as client:  # type: ignore[arg-type]
        return ha.fetch_snapshot(client)


def sync(server: FakeHomeAssistant, engine: sa.Engine, **options: object) -> storage.SyncResult:
    return storage.sync_snapshot(engine, fetch(server), **options)  # type: ignore[arg-type]


def database_fingerprint(db_url: str) -> str:
    """A hash of everything in the database, on any engine: every table's name, columns and
    indexes, and all its rows (in a canonical order), the migration version included. Equal
    fingerprints mean no row, value, table or index was added, changed or removed."""
    engine = sa.create_engine(db_url)
    digest = hashlib.sha256()
    try:
        inspector = sa.inspect(engine)
        all_columns, all_indexes = inspector.get_multi_columns(), inspector.get_multi_indexes()  # one query each
        with engine.connect() as connection:
            for (_, name), found in sorted(all_columns.items()):
                columns = [column["name"] for column in found]
                indexes = sorted(index["name"] or "" for index in all_indexes.get((None, name), []))
                digest.update(repr((name, columns, indexes)).encode())
                table = sa.table(name, *(sa.column(column) for column in columns))
                # Sorted here, not by SQL: PostgreSQL's json type has no ordering.
                rows = sorted(repr(tuple(row)) for row in connection.execute(sa.select(table)))
                digest.update(repr((len(rows), rows)).encode())
    finally:
        engine.dispose()
    return digest.hexdigest()
