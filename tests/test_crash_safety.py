"""A sync process killed with SIGKILL in the middle of its write transaction leaves the mirror at the
previous complete snapshot; the next sync succeeds and `ha_sync_runs` records the killed run.

The sync runs as the real command (`homeiq-pipeline sync`) in a child process. A hook in that child
(not in the product) pauses it after the k-th table was written, inside the write transaction;
the test proves it is there (the child sees its own uncommitted rows, the parent does not, and the
write lock is held, or PostgreSQL shows the session in a transaction), then kills it. Runs on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from homeiq_pipeline import cli, storage
from homeiq_pipeline.storage.queries import recent_sync_runs
from homeiq_pipeline.storage.schema import MIRRORED_TABLES, devices, entities

from .fake_ha import FakeHomeAssistant
from .helpers import TOKEN, sync
from .mirror_checks import all_rows, assert_mirror_equals_ha

# Runs `homeiq-pipeline sync` with `storage.write.apply_plan` wrapped: after PAUSE_AFTER tables it reports what it
# sees inside its own transaction to READY_FILE and sleeps until killed.
CHILD = r"""
import json, os, sys, time
import sqlalchemy as sa
from homeiq_pipeline import cli
from homeiq_pipeline.storage import write as storage_write
from homeiq_pipeline.storage.schema import devices

real_apply, applied = storage_write.apply_plan, []

def apply_then_pause(connection, plan, *args):
    real_apply(connection, plan, *args)
    applied.append(plan.spec.name)
    if len(applied) == int(os.environ["PAUSE_AFTER"]):
        table = devices.table
        live = connection.execute(sa.select(sa.func.count()).where(table.c.removed_at.is_(None))).scalar()
        report = {"applied": applied, "in_transaction": connection.in_transaction(), "live_devices": live}
        ready = os.environ["READY_FILE"]
        with open(ready + ".tmp", "w") as out:
            json.dump(report, out)
        os.replace(ready + ".tmp", ready)  # the parent never reads half a report
        time.sleep(600)

storage_write.apply_plan = apply_then_pause
sys.exit(cli.main(sys.argv[1:]))
"""


def _paused_child(db_url: str, fake_ha: FakeHomeAssistant, pause_after: int, ready: Path) -> tuple[subprocess.Popen, dict]:
    """`homeiq-pipeline sync` in a child paused inside its write transaction, and its report."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, "--db-url", db_url, "sync", "--ha-url", fake_ha.url],
        env={**os.environ, "HA_TOKEN": TOKEN, "PAUSE_AFTER": str(pause_after), "READY_FILE": str(ready)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if child.poll() is not None:
            raise AssertionError(child.communicate())
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError("the child never reached the pause point")
        time.sleep(0.05)
    return child, json.loads(ready.read_text())


def _live_devices(engine: sa.Engine) -> int:
    table = devices.table
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).where(table.c.removed_at.is_(None))).scalar_one()


def _runs(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(sa.select(storage.sync_runs).order_by(storage.sync_runs.c.id)).mappings()]


def _another_writer_is_mid_transaction(engine: sa.Engine, db_url: str) -> bool:
    """SQLite: the write lock is held. PostgreSQL: a session of this database sits in a transaction."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            return connection.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state = 'idle in transaction'"
            ).scalar_one() == 1
    probe = sqlite3.connect(sa.make_url(db_url).database or "", timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        return "locked" in str(exc)
    else:
        probe.execute("ROLLBACK")
        return False
    finally:
        probe.close()


@pytest.mark.parametrize("pause_after", [2, len(MIRRORED_TABLES)], ids=["after-devices-and-entities", "after-every-table"])
def test_a_sync_killed_inside_its_write_transaction_leaves_the_previous_snapshot(
    fake_ha: FakeHomeAssistant, engine: sa.Engine, db_url: str, tmp_path: Path, pause_after: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = sync(fake_ha, engine)
    before = {spec.name: all_rows(engine, spec) for spec in MIRRORED_TABLES}
    runs_before = _runs(engine)
    devices_before = _live_devices(engine)
    # Changes the killed sync would write in the first two tables.
    with fake_ha.lock:
        fake_ha.results["config/device_registry/list"].pop()
        fake_ha.results["config/entity_registry/list"][0]["name"] = "renamed by the killed sync"

    child, seen = _paused_child(db_url, fake_ha, pause_after, tmp_path / "ready.json")
    try:
        # Proof that the kill lands inside the write transaction:
        assert seen["in_transaction"] is True
        assert seen["applied"][:2] == ["ha_devices", "ha_entities"]
        assert seen["live_devices"] == devices_before - 1  # the child sees its uncommitted removal...
        assert _live_devices(engine) == devices_before  # ...no one else does
        assert _another_writer_is_mid_transaction(engine, db_url)
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL

    engine.dispose()  # a fresh connection, as the next process would open
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    assert {spec.name: all_rows(engine, spec) for spec in MIRRORED_TABLES} == before
    runs = _runs(engine)
    assert runs[: len(runs_before)] == runs_before
    (killed,) = runs[len(runs_before) :]
    assert killed["outcome"] == "running" and killed["counts"] == {}
    with engine.connect() as connection:  # readers still see the last complete sync
        assert recent_sync_runs(connection, "home", limit=1)[0]["id"] == first.run_id

    result = sync(fake_ha, engine)
    assert result.counts["ha_devices"].removed == 1
    assert result.counts["ha_entities"].updated == 1
    assert_mirror_equals_ha(engine, fake_ha.results)
    runs = _runs(engine)
    assert [run["outcome"] for run in runs[len(runs_before) :]] == ["interrupted", "success"]
    assert runs[-1]["id"] == result.run_id
    with engine.connect() as connection:
        assert recent_sync_runs(connection, "home", limit=1)[0]["id"] == result.run_id
        outcomes = [run["outcome"] for run in recent_sync_runs(connection, "home", outcome=None)]
    assert outcomes[:2] == ["success", "interrupted"]
    # `homeiq-pipeline status` lists it too.
    assert cli.main(["--db-url", db_url, "status"]) == cli.EXIT_OK
    status = capsys.readouterr().out
    assert any(line.split()[:1] == [str(killed["id"])] and "interrupted" in line.split() for line in status.splitlines()), status


def test_a_sync_killed_during_the_first_sync_leaves_an_empty_mirror(
    fake_ha: FakeHomeAssistant, engine: sa.Engine, db_url: str, tmp_path: Path
) -> None:
    child, seen = _paused_child(db_url, fake_ha, 3, tmp_path / "ready.json")
    try:
        assert seen["live_devices"] > 0
        assert _live_devices(engine) == 0
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    engine.dispose()
    assert all(all_rows(engine, spec) == [] for spec in MIRRORED_TABLES)
    sync(fake_ha, engine)
    assert_mirror_equals_ha(engine, fake_ha.results)
    assert [run["outcome"] for run in _runs(engine)] == ["interrupted", "success"]
    assert len(all_rows(engine, entities)) == len(fake_ha.results["config/entity_registry/list"])
