"""Readers during writes: the analytics' own queries, looping in other processes while 50 syncs of a
large home (4,000 entities and states) run, never fail ("database is locked" or anything else) and
always see one complete snapshot.

The invariant: every read happens in one transaction and picks the latest successful sync run
(as the analytics do); what it reads must be exactly the snapshot that run stored: the live row
counts equal the run's recorded counts, and the states (entity_id, state) equal that snapshot's,
by digest. The syncs cycle through five different snapshots (sizes and state values differ), so a
read that mixed two syncs, or saw a sync half-written, fails the check. A second process runs the
analytics refresh itself (it writes too) and checks each stored overview against its sync run.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from homeiq_pipeline import storage
from homeiq_pipeline.demo.synthetic import synthetic_results
from homeiq_pipeline.snapshot import LIST_COMMANDS, Snapshot

ROOT = Path(__file__).resolve().parents[1]
SYNCS = 50
VARIANTS = 5
DEVICES, ENTITIES = 400, 4_000
TABLES = {"devices": "ha_devices", "entities": "ha_entities", "areas": "ha_areas", "floors": "ha_floors",
          "config_entries": "ha_config_entries", "states": "entities_with_state"}


def states_digest(pairs: list[tuple[str, str]]) -> str:
    return hashlib.sha256(json.dumps(sorted(pairs)).encode()).hexdigest()


def variant(index: int) -> Snapshot:
    """A large home; each variant has other sizes (rows removed and returning) and state values."""
    less = 10 * index
    results = synthetic_results(DEVICES - less, ENTITIES - 10 * less, ENTITIES - 10 * less, seed=index)
    return Snapshot(
        ha_version="2025.4.4", location_name=results["get_config"]["location_name"], config=results["get_config"],
        **{name: results[command] for name, command in LIST_COMMANDS.items()},
    )


# -- the reader processes ---------------------------------------------------------------------------


def read_until_stopped(db_url: str, stop: str, report: str, progress: str) -> None:
    """Loop: the analytics' read (latest run + the live mirror, one transaction), summarised."""
    from homeiq_pipeline.analytics import compute, latest_picture

    engine = storage.create_engine(db_url)
    reads: list[dict[str, Any]] = []
    errors: list[str] = []
    while not os.path.exists(stop):
        try:
            with storage.read_snapshot(engine) as connection:
                run, picture = latest_picture(connection, "home")  # no cache: each time a whole read
            overview = compute.home_overview(picture, run).iloc[0]
            pairs = list(zip(picture.states["entity_id"], picture.states["state"]))
            reads.append({
                "run_id": int(run["id"]),
                "recorded": {name: run["counts"][table]["live"] for name, table in
                             zip(TABLES, ("ha_devices", "ha_entities", "ha_areas", "ha_floors", "ha_config_entries", "ha_states"))},
                "seen": {name: int(overview[column]) for name, column in
                         zip(TABLES, ("devices", "entities", "areas", "floors", "integrations", "entities_with_state"))},
                "states_digest": states_digest(pairs),
            })
            _announce(progress, int(run["id"]))
        except Exception:  # noqa: BLE001 (every failure is reported, then asserted on by the test)
            errors.append(traceback.format_exc())
    Path(report).write_text(json.dumps({"reads": reads, "errors": errors}))


def refresh_until_stopped(db_url: str, stop: str, report: str, progress: str) -> None:
    """Loop: the analytics refresh (reads the mirror, writes the analytics tables), then check what
    it stored against the sync run it names."""
    from homeiq_pipeline.analytics import refresh_analytics
    from homeiq_pipeline.storage.schema import ANALYTICS_TABLES

    engine = storage.create_engine(db_url)
    overview = ANALYTICS_TABLES["home_overview"]
    checked: list[dict[str, Any]] = []
    errors: list[str] = []
    while not os.path.exists(stop):
        try:
            refreshed = refresh_analytics(engine, "home")
            with storage.read_snapshot(engine) as connection:
                row = connection.execute(
                    sa.select(overview).where(overview.c.sync_run_id == refreshed.sync_run["id"]).order_by(overview.c.id.desc()).limit(1)
                ).mappings().one()
                counts = connection.execute(
                    sa.select(storage.sync_runs.c.counts).where(storage.sync_runs.c.id == row["sync_run_id"])
                ).scalar_one()
            checked.append({
                "run_id": row["sync_run_id"],
                "stored": [row["devices"], row["entities"], row["entities_with_state"]],
                "recorded": [counts["ha_devices"]["live"], counts["ha_entities"]["live"], counts["ha_states"]["live"]],
            })
            _announce(progress, row["sync_run_id"])
        except Exception:  # noqa: BLE001 (reported, then asserted on)
            errors.append(traceback.format_exc())
    Path(report).write_text(json.dumps({"checked": checked, "errors": errors}))


def _announce(progress: str, run_id: int) -> None:
    """Tell the test which sync run this process has just read (the test waits on it)."""
    with open(progress, "a") as file:
        file.write(f"{run_id}\n")


def _start(function: str, db_url: str, stop: Path, report: Path, progress: Path) -> subprocess.Popen[bytes]:
    code = f"from tests.test_concurrent_readers import {function}; {function}(*__import__('sys').argv[1:])"
    return subprocess.Popen([sys.executable, "-c", code, db_url, str(stop), str(report), str(progress)], cwd=ROOT)


def _wait_until_read(progress: Path, run_id: int) -> None:
    """SQLite's write lock is not fair: back-to-back syncs could starve a reader that also writes
    (the refresher). So the writer pauses, now and then, until each process has read its latest run."""
    def latest() -> int:
        return max((int(line) for line in progress.read_text().split()), default=0) if progress.exists() else 0

    deadline = time.monotonic() + 60
    while latest() < run_id:
        assert time.monotonic() < deadline, f"{progress.stem} read no run at or after {run_id} within 60 s"
        time.sleep(0.05)


# -- the test -----------------------------------------------------------------------------------------


def test_readers_in_other_processes_always_see_one_complete_snapshot_during_50_syncs(tmp_path: Path, db_url: str) -> None:
    engine = storage.open_database(db_url)
    snapshots = [variant(i) for i in range(VARIANTS)]
    digests = [states_digest([(s["entity_id"], s["state"]) for s in snap.states]) for snap in snapshots]
    expected: dict[int, dict[str, Any]] = {}  # run id -> what that run stored

    def sync(index: int) -> int:
        snap = snapshots[index % VARIANTS]
        result = storage.sync_snapshot(engine, snap)
        sizes = {name: len(getattr(snap, name)) for name in TABLES}
        assert {name: result.counts[f"ha_{name}"].live for name in TABLES} == sizes
        expected[result.run_id] = {"sizes": sizes, "states_digest": digests[index % VARIANTS]}
        return result.run_id

    first = sync(0)  # the readers need a first sync to read
    stop = tmp_path / "stop"
    names = ("reader", "refresher")
    reports = {name: tmp_path / f"{name}.json" for name in names}
    progress = {name: tmp_path / f"{name}.progress" for name in names}
    readers = [_start("read_until_stopped", db_url, stop, reports["reader"], progress["reader"]),
               _start("refresh_until_stopped", db_url, stop, reports["refresher"], progress["refresher"])]
    try:
        for name in names:
            _wait_until_read(progress[name], first)
        for index in range(1, SYNCS + 1):
            run_id = sync(index)
            if index % 5 == 0:  # ten times, each process reads while syncs go on around it
                for name in names:
                    _wait_until_read(progress[name], run_id)
    finally:
        stop.touch()
        for reader in readers:
            reader.wait(timeout=60)
    engine.dispose()

    read = json.loads(reports["reader"].read_text())
    refreshed = json.loads(reports["refresher"].read_text())
    assert read["errors"] == [] and refreshed["errors"] == [], (read["errors"] + refreshed["errors"])[:3]
    for seen in read["reads"]:
        run = expected[seen["run_id"]]
        assert seen["recorded"] == seen["seen"] == run["sizes"], seen
        assert seen["states_digest"] == run["states_digest"], seen["run_id"]
    for check in refreshed["checked"]:
        assert check["stored"] == check["recorded"], check
    # Both processes read while the syncs went on: at least the eleven runs the test waited for.
    assert len({seen["run_id"] for seen in read["reads"]}) >= 11
    assert len({check["run_id"] for check in refreshed["checked"]}) >= 11
    print(f"{len(read['reads'])} reads of {len({s['run_id'] for s in read['reads']})} runs, "
          f"{len(refreshed['checked'])} analytics refreshes during {SYNCS} syncs")
