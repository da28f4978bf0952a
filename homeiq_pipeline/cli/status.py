"""`homeiq-pipeline status`: the last sync runs and the live and removed rows per table."""

from __future__ import annotations

import argparse

from .. import storage
from ..settings import Settings
from ..storage.queries import recent_sync_runs, row_counts
from .exits import EXIT_OK
from .output import print_table


def command(args: argparse.Namespace, settings: Settings) -> int:
    engine = storage.open_database(args.db_url)
    try:
        with storage.read_snapshot(engine) as connection:
            runs = recent_sync_runs(connection, args.instance, args.runs, outcome=None)  # interrupted ones too
            counts = row_counts(connection, args.instance)
    finally:
        engine.dispose()
    print(f"Mirror {storage.safe_url(args.db_url)}, instance {args.instance!r}")
    if not runs:
        print("No sync has run yet: run `homeiq-pipeline sync`.")
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
