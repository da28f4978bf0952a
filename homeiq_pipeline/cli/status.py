"""`homeiq-pipeline status`: the last sync runs and the live and removed rows per table, of the
mirror or (--demo) of the demo's. It only reads: a SQLite file that is not there yet is said so,
not created."""

from __future__ import annotations

import argparse

from .. import launcher, storage
from ..settings import Settings
from ..storage.queries import recent_sync_runs, row_counts
from .exits import EXIT_OK
from .output import print_table


def command(args: argparse.Namespace, settings: Settings) -> int:
    db_url, instance = (settings.demo_db_url, launcher.DEMO_INSTANCE) if args.demo else (args.db_url, args.instance)
    first_sync = (
        "`homeiq-pipeline sync --demo` (or `make demo`)" if args.demo else "`homeiq-pipeline sync` (or `make run`)"
    )
    if storage.missing_sqlite_file(db_url):
        print(f"No mirror at {storage.safe_url(db_url)} yet: run {first_sync}")
        return EXIT_OK
    engine = storage.open_database(db_url)
    try:
        with storage.read_snapshot(engine) as connection:
            runs = recent_sync_runs(connection, instance, args.runs, outcome=None)  # interrupted ones too
            counts = row_counts(connection, instance)
    finally:
        engine.dispose()
    print(f"Mirror {storage.safe_url(db_url)}, instance {instance!r}")
    if not runs:
        print(f"No sync has run yet: run {first_sync}.")
        return EXIT_OK
    print_table(["table", "live", "removed"], [[name, c["live"], c["removed"]] for name, c in counts.items()])
    print()
    print_table(
        ["run", "finished (UTC)", "outcome", "HA version", "added", "updated", "removed"],
        [
            [
                run["id"],
                f"{run['finished_at']:%Y-%m-%d %H:%M:%S}",
                run["outcome"],
                run["ha_version"],
                *(sum(t[k] for t in run["counts"].values()) for k in ("added", "updated", "removed")),
            ]
            for run in runs
        ],
    )
    return EXIT_OK
