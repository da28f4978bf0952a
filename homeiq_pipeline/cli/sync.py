"""`homeiq-pipeline sync`: one snapshot of one home into the mirror, without Dagster."""

from __future__ import annotations

import argparse
import time

import sqlalchemy as sa

from .. import homeassistant as ha
from .. import launcher, storage
from ..settings import Settings
from ..storage.queries import recent_sync_runs
from .connections import connector, the_home
from .exits import EXIT_INTERRUPTED, EXIT_OK, EXIT_REFUSED, FOR_CAUSE, fail
from .output import print_table


def command(args: argparse.Namespace, settings: Settings) -> int:
    if args.demo:
        return demo_sync(settings)
    connect = connector(args, settings, the_home(args, settings, args.instance))
    return sync_from(connect(), args.db_url, args.instance, force=args.force, max_removed_share=args.max_removed_share)


def demo_sync(settings: Settings) -> int:
    """One sync from the demo server, into a database of its own so demo rows never mix with real ones."""
    from ..demo.server import DEMO_TOKEN, demo_home_assistant

    print("Starting the DEMO Home Assistant: recorded demo data, not a real home.", flush=True)
    with demo_home_assistant() as server:
        env = launcher.demo_environment(settings, server.url, DEMO_TOKEN)
        code = sync_from(ha.HomeAssistantClient(server.url, DEMO_TOKEN), env["HOMEIQ_DB_URL"], env["HOMEIQ_INSTANCE"])
    if code == EXIT_OK:
        print("\nTry: homeiq-pipeline status --demo")
    return code


def sync_from(
    client: ha.HomeAssistantClient,
    db_url: str,
    instance: str,
    *,
    force: bool = False,
    max_removed_share: float = storage.DEFAULT_MAX_REMOVED_SHARE,
) -> int:
    started = time.monotonic()
    try:
        with client:
            snapshot = ha.fetch_snapshot(client)
    except ha.HomeAssistantError as exc:
        return fail(FOR_CAUSE[exc.cause], f"{exc}. Nothing was written.")
    except KeyboardInterrupt:
        return fail(EXIT_INTERRUPTED, "interrupted: nothing was written")
    engine = storage.open_database(db_url)
    try:
        result = storage.sync_snapshot(
            engine, snapshot, instance=instance, force=force, max_removed_share=max_removed_share
        )
    except storage.StorageError as exc:
        return fail(EXIT_REFUSED, f"{exc}. Nothing was written.")
    except KeyboardInterrupt:  # sync_snapshot rolls back, unless it had committed just before
        landed = _landed_run(engine, snapshot, instance)
        if landed is None:
            return fail(EXIT_INTERRUPTED, "interrupted: nothing was written")
        return fail(EXIT_INTERRUPTED, f"interrupted, but the sync was already committed (run {landed})")
    finally:
        engine.dispose()
    try:
        print(
            f"Synced Home Assistant {result.ha_version} ({result.location_name or 'unnamed'}) into "
            f"{storage.safe_url(db_url)} as instance {result.instance!r}: run {result.run_id}, "
            f"{time.monotonic() - started:.2f} s"
        )
        print_table(
            ["table", "live", "added", "updated", "removed", "unchanged"],
            [[name, c.live, c.added, c.updated, c.removed, c.unchanged] for name, c in result.counts.items()],
        )
    except KeyboardInterrupt:
        return fail(EXIT_INTERRUPTED, f"interrupted, but the sync was already committed (run {result.run_id})")
    return EXIT_OK


def _landed_run(engine: sa.Engine, snapshot: ha.Snapshot, instance: str) -> int | None:
    """The id of the successful run that stored `snapshot`, if it was committed after all."""
    with storage.read_snapshot(engine) as connection:
        last = recent_sync_runs(connection, instance, 1)
    return int(last[0]["id"]) if last and last[0]["started_at"] == snapshot.fetched_at else None
