"""Migrations create the schema the code declares, and upgrade an existing database in place."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from homeiq_pipeline import storage
from homeiq_pipeline.storage.database import MIGRATIONS, current_revision
from homeiq_pipeline.storage.schema import MIRRORED_TABLES

from .helpers import at_once


def test_migrations_build_exactly_the_declared_schema(db_url: str) -> None:
    engine = storage.open_database(db_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), storage.metadata)
    assert differences == []
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert current_revision(engine) == head


def test_the_public_table_names(db_url: str) -> None:
    engine = storage.open_database(db_url)
    names = set(sa.inspect(engine).get_table_names())
    assert {
        "ha_devices", "ha_entities", "ha_areas", "ha_floors", "ha_labels",
        "ha_config_entries", "ha_states", "ha_sync_runs",
    } <= names
    assert {spec.name for spec in MIRRORED_TABLES} <= names


def test_upgrading_again_keeps_the_data(db_url: str) -> None:
    engine = storage.open_database(db_url)
    with engine.begin() as connection:
        connection.execute(
            storage.sync_runs.insert().values(
                instance="home", started_at=sa.func.now(), finished_at=sa.func.now(), outcome="success",
                forced=False, counts={},
            )
        )
    engine.dispose()
    again = storage.open_database(db_url)
    with again.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(storage.sync_runs)).scalar() == 1


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(sqlite_url: str) -> None:
    engine = storage.open_database(sqlite_url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_an_old_database_is_upgraded_in_place_and_keeps_its_rows(db_url: str) -> None:
    from alembic import command

    from homeiq_pipeline.storage.database import _alembic_config, create_engine

    engine = create_engine(db_url)
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), "0001")  # the first released schema
    with engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO ha_devices (instance, id, name, raw, content_hash, first_seen, changed_at) "
            "VALUES ('home', 'd1', 'Lamp', '{\"id\": \"d1\", \"name\": \"Lamp\"}', 'h', '2026-01-01', '2026-01-01')"
        ))
    assert "analytics_home_overview" not in sa.inspect(engine).get_table_names()
    engine.dispose()
    upgraded = storage.open_database(db_url)
    with upgraded.connect() as connection:
        row = connection.execute(sa.text("SELECT id, name, raw FROM ha_devices")).one()
        differences = compare_metadata(MigrationContext.configure(connection), storage.metadata)
    assert (row.id, row.name) == ("d1", "Lamp")
    assert differences == []


def test_processes_starting_together_migrate_once_and_none_fails(db_url: str) -> None:
    """Webserver, daemon and runs all open the mirror at start-up: on an empty database they race
    to create the schema. The others wait for the first, then find the schema at head."""
    engines = [storage.create_engine(db_url) for _ in range(3)]
    assert at_once(storage.upgrade, engines) == [None] * 3  # none raised
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert {current_revision(engine) for engine in engines} == {head}
    with engines[0].connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), storage.metadata) == []
    for engine in engines:
        engine.dispose()


def test_a_new_sqlite_file_opened_at_once_by_many_connections_never_reports_locked(tmp_path) -> None:
    """Switching a new file to WAL takes an exclusive lock, and SQLite refuses a second switcher at
    once instead of waiting. One race lost about one round in twenty; fifty rounds of four
    connections make that near-certain to show if the wait is ever lost."""
    def journal_mode(engine: sa.Engine) -> object:
        with engine.connect() as connection:
            return connection.exec_driver_sql("PRAGMA journal_mode").scalar()

    for round_number in range(50):
        engines = [storage.create_engine(f"sqlite:///{tmp_path}/mirror-{round_number}.db") for _ in range(4)]
        assert at_once(journal_mode, engines) == ["wal"] * 4, f"round {round_number}"
        for engine in engines:
            engine.dispose()
