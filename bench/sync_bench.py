"""Benchmark the snapshot sync on a synthetic home (default 5,000 devices, 50,000 entities,
50,000 states) in SQLite (or the database of --db-url, e.g. PostgreSQL), and the same initial
write done the old way (a per-row `session.merge()` loop into the same tables).

    python bench/sync_bench.py [--devices N] [--entities N] [--states N] [--runs N] [--skip-merge]
                               [--db-url postgresql+psycopg://user@127.0.0.1:5432/scratch]

--db-url names a SCRATCH database: every table in it is dropped before each initial sync.

Targets (issue 2): initial write >= 20x faster than the merge loop; a no-change resync writes 0
rows and takes <= 25% of the initial sync; peak RSS < 500 MB. This prints numbers; it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import orm

from homeiq_pipeline import storage
from homeiq_pipeline.demo.synthetic import synthetic_results
from homeiq_pipeline.homeassistant import LIST_COMMANDS, Snapshot
from homeiq_pipeline.storage.schema import MIRRORED_TABLES


def snapshot_of(results: dict) -> Snapshot:
    config = results["get_config"]
    lists = {name: results[command] for name, command in LIST_COMMANDS.items()}
    return Snapshot(ha_version=config["version"], location_name=config["location_name"], config=config, **lists)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def merge_loop(url: str, snapshot: Snapshot) -> float:
    """The older design's write: one ORM merge per row (a SELECT, then an INSERT at flush)."""
    engine = storage.open_database(url)
    mapper_registry = orm.registry()
    classes = {}
    for spec in MIRRORED_TABLES:
        classes[spec.name] = type(spec.name, (), {})
        mapper_registry.map_imperatively(classes[spec.name], spec.table)
    now = datetime.now(UTC)
    started = time.perf_counter()
    with orm.Session(engine) as session:
        for spec in MIRRORED_TABLES:
            for entry in getattr(snapshot, spec.snapshot_field):
                row = classes[spec.name]()
                for field in spec.fields:
                    setattr(row, field, entry.get(field))
                row.instance, row.raw, row.content_hash = "home", entry, ""
                row.first_seen = row.changed_at = now
                session.merge(row)
        session.commit()
    seconds = time.perf_counter() - started
    mapper_registry.dispose()
    engine.dispose()
    return seconds


def median_of(runs: int, action) -> tuple[object, float, list[float]]:
    """(last result, median seconds, all seconds) of `runs` calls: timings here vary by +-20%."""
    results = []
    for _ in range(runs):
        started = time.perf_counter()
        result = action()
        results.append((time.perf_counter() - started, result))
    seconds = [round(s, 2) for s, _ in results]
    return results[-1][1], statistics.median(seconds), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=5_000)
    parser.add_argument("--entities", type=int, default=50_000)
    parser.add_argument("--states", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3, help="repetitions; medians are printed")
    parser.add_argument("--skip-merge", action="store_true", help="skip the slow merge-loop comparison")
    parser.add_argument("--db-url", help="a SCRATCH database (emptied before each run) instead of SQLite files")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="homeiq-bench-") as tmp:
        results = synthetic_results(args.devices, args.entities, args.states)
        snapshot = snapshot_of(results)
        rows = sum(snapshot.counts().values())
        print(f"synthetic home: {args.devices} devices, {args.entities} entities, {args.states} states ({rows} rows)")

        def fresh_url(name: str) -> str:
            """An empty database: a new SQLite file, or the scratch database emptied."""
            if args.db_url is None:
                for suffix in ("", "-wal", "-shm"):
                    Path(tmp, f"{name}.db{suffix}").unlink(missing_ok=True)
                return f"sqlite:///{Path(tmp) / f'{name}.db'}"
            engine = sa.create_engine(args.db_url)
            with engine.begin() as connection:
                scratch = sa.MetaData()
                scratch.reflect(connection)
                scratch.drop_all(connection)
            engine.dispose()
            return args.db_url

        backend = sa.make_url(args.db_url).get_backend_name() if args.db_url else "sqlite"
        print(f"{backend}, median of {args.runs} runs")

        def initial_sync(url: str) -> tuple[storage.SyncResult, float]:
            engine = storage.open_database(url)  # empty and migrated, untimed
            started = time.perf_counter()
            result = storage.sync_snapshot(engine, snapshot)
            seconds = time.perf_counter() - started
            engine.dispose()
            return result, seconds

        url_of_last_run = ""
        initial_runs = []
        for _ in range(args.runs):
            url_of_last_run = fresh_url("initial")
            initial_runs.append(initial_sync(url_of_last_run))
        runs = [round(seconds, 2) for _, seconds in initial_runs]
        initial, t_initial = initial_runs[0][0], statistics.median(runs)
        print(f"initial sync:         {t_initial:7.2f} s  rows written {initial.rows_written}  (runs: {runs})")

        engine = storage.open_database(url_of_last_run)  # the last initial sync's database: full
        again, t_again, runs = median_of(args.runs, lambda: storage.sync_snapshot(engine, snapshot))
        print(f"no-change resync:     {t_again:7.2f} s  rows written {again.rows_written}  "
              f"({t_again / t_initial:.0%} of the initial sync; runs: {runs})")

        changed = [dict(e) for e in snapshot.entities]
        for entry in changed[::100]:  # 1% of entities renamed by the user
            entry["name"] = f"Renamed {entry['entity_id']}"
        changed_snapshot = snapshot_of({**results, "config/entity_registry/list": changed})
        one_percent, t_one, _ = median_of(1, lambda: storage.sync_snapshot(engine, changed_snapshot))
        print(f"1% entities changed:  {t_one:7.2f} s  rows written {one_percent.rows_written}")
        print(f"peak RSS:             {peak_rss_mb():7.0f} MB")
        engine.dispose()

        if not args.skip_merge:
            t_merge = merge_loop(fresh_url("merge"), snapshot)
            print(f"merge loop (old way): {t_merge:7.2f} s  (one run) -> bulk upsert is {t_merge / t_initial:.1f}x faster")
        if args.db_url is not None:
            with contextlib.suppress(Exception):
                fresh_url("done")  # leave the scratch database empty


if __name__ == "__main__":
    main()
