"""Shared fixtures: a fake HA serving the recording of a real HA 2025.4.4, and a fresh mirror; and
what a failing test that has a Dagster deployment up reports about it (tests/helpers.py).

The mirror fixtures (`db_url`, `engine`) run every fast-tier test twice: on SQLite and on a real
PostgreSQL server that this test run starts itself (tests/postgres.py), a fresh database per test.
The marked tiers (real_ha, e2e, container) use SQLite here; they start their own servers.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from homeiq_pipeline import storage

from .fake_ha import FakeHomeAssistant
from .helpers import RUNNING, TOKEN, dagster_diagnostics
from .postgres import PostgresServer, postgres_server
from .servers import missing

DATABASES = ("sqlite", "postgresql")
SLOW_TIERS = ("real_ha", "e2e", "container")


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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A test that fails using a Dagster deployment a fixture holds up reports what went on in it."""
    report = yield
    if report.failed:
        used = {getattr(value, "url", "") for value in getattr(item, "funcargs", {}).values()}
        for url in sorted(RUNNING.keys() & used):
            title = f"Dagster at {url}: its log, sensor ticks and runs"
            report.sections.append((title, dagster_diagnostics(url, RUNNING[url])))
    return report


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
