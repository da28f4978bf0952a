"""End to end on PostgreSQL: a real Dagster webserver and daemon whose instance storage (runs, event
logs, sensor ticks, run queue) is in a real PostgreSQL server (docker/dagster.postgres.yaml), syncing
a Home Assistant into a mirror in the same server. The run is read back through GraphQL, the rows
from PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from ..fake_ha import FakeHomeAssistant
from ..helpers import TOKEN, Deployment, finished, free_port, launched, wait_for
from ..mirror_checks import assert_mirror_equals_ha
from ..postgres import PostgresServer

pytestmark = pytest.mark.e2e

INSTANCE_YAML = Path(__file__).resolve().parents[2] / "docker" / "dagster.postgres.yaml"


def test_webserver_and_daemon_run_a_sync_with_instance_storage_and_mirror_on_postgresql(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    mirror_db, dagster_db = postgres.create_database("mirror"), postgres.create_database("dagster")
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(INSTANCE_YAML, home / "dagster.yaml")  # kept: the launcher copies its own only into an empty home
    environment = {
        "HOMEIQ_DB_URL": postgres.url(mirror_db),
        "DAGSTER_POSTGRES_URL": postgres.url(dagster_db, driver="postgresql+psycopg2"),
        "DAGSTER_HOME": str(home),
    }
    ha = FakeHomeAssistant(token=TOKEN, port=free_port()).start()
    try:
        with launched(tmp_path, ha.url, TOKEN, environment) as (url, log):
            deployment = Deployment(url, ha, log)
            run = wait_for("the first-contact sync on PostgreSQL", lambda: finished(deployment, "first contact"), timeout=180)
            devices = deployment.latest_materialization("ha_devices")
    finally:
        ha.stop()

    # Dagster's answer (GraphQL): the run succeeded and wrote every device.
    listed = len(ha.results["config/device_registry/list"])
    assert devices["runId"] == run["runId"]
    assert devices["metadata"]["dagster/row_count"] == devices["metadata"]["added"] == listed

    # The mirror's rows are in PostgreSQL, equal to what HA listed.
    engine = sa.create_engine(postgres.url(mirror_db))
    try:
        assert_mirror_equals_ha(engine, ha.results)
        with engine.connect() as connection:
            outcomes = connection.execute(sa.text("SELECT outcome FROM ha_sync_runs")).scalars().all()
        assert outcomes == ["success"]
    finally:
        engine.dispose()

    # Dagster's own storage is in PostgreSQL too: the run, its events, the daemon's sensor ticks;
    # and no SQLite storage was created in DAGSTER_HOME.
    with psycopg.connect(host="127.0.0.1", port=postgres.port, user="postgres", dbname=dagster_db) as connection:
        statuses = dict(connection.execute("SELECT run_id, status FROM runs").fetchall())
        events = connection.execute("SELECT count(*) FROM event_logs WHERE run_id = %s", (run["runId"],)).fetchone()
        ticks = connection.execute("SELECT count(*) FROM job_ticks").fetchone()
    assert statuses[run["runId"]] == "SUCCESS"
    assert events is not None and events[0] > 0
    assert ticks is not None and ticks[0] > 0
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*.db")) == []
    postgres.drop_database(mirror_db)
    postgres.drop_database(dagster_db)
