"""`homeiq-pipeline`: sync Home Assistant into the mirror once, or show the mirror's status.

The token is read from HA_TOKEN only: a flag would land in shell history and process lists.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence

import sqlalchemy as sa

from . import homeassistant as ha
from . import launcher, settings, storage
from .storage.queries import recent_sync_runs, row_counts

# Exit codes, so scripts can tell a transient failure from one that needs a person.
EXIT_OK = 0
EXIT_CONFIG = 2  # missing or invalid settings
EXIT_UNAVAILABLE = 3  # unreachable, timed out or still starting: try again later
EXIT_AUTH = 4  # the token was rejected
EXIT_HA_ERROR = 5  # HA answered something we cannot use
EXIT_REFUSED = 6  # the data-loss guard refused the snapshot, or it could not be stored
EXIT_DATABASE = 7  # the database could not be opened or written

log = logging.getLogger("homeiq_pipeline")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="homeiq-pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    parser.add_argument(
        "--db-url",
        default=settings.database_url(),
        help="SQLAlchemy URL of the mirror (env HOMEIQ_DB_URL; default: data/homeiq.db under HOMEIQ_DATA_DIR)",
    )
    parser.add_argument(
        "--instance",
        default=settings.instance(),
        help="name of this Home Assistant in the mirror (env HOMEIQ_INSTANCE; default: home)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    sync = commands.add_parser("sync", help="take one snapshot of Home Assistant and store it")
    sync.add_argument("--ha-url", default=os.environ.get("HA_URL"), help="e.g. http://homeassistant.local:8123 (env HA_URL)")
    sync.add_argument("--timeout", type=float, default=settings.ha_timeout(),
                      help="seconds to wait for each answer (env HA_TIMEOUT; default 30)")
    sync.add_argument("--max-frame-mb", type=float,
                      default=settings.ha_max_frame_mb(),
                      help="largest websocket frame accepted, MiB (env HA_MAX_FRAME_MB; default 64)")
    sync.add_argument("--ca-bundle", default=settings.ha_ca_bundle(),
                      help="CA file to verify HA's TLS certificate (env HA_CA_BUNDLE)")
    sync.add_argument("--insecure", action="store_true", default=not settings.ha_verify_tls(),
                      help="do NOT verify HA's TLS certificate (env HA_VERIFY_TLS=false); logs a warning")
    sync.add_argument("--force", action="store_true", help="store the snapshot even if it removes most devices or entities")
    sync.add_argument("--max-removed-share", type=float, default=storage.DEFAULT_MAX_REMOVED_SHARE,
                      help="share of devices or entities a sync may remove without --force (default 0.5)")

    sync.add_argument("--demo", action="store_true",
                      help="sync the labelled DEMO Home Assistant (recorded demo data, not a real home) into data/demo.db")

    run = commands.add_parser("run", help="start the Dagster UI and daemon; the reconnect sensor syncs within a minute")
    run.add_argument("--demo", action="store_true",
                     help="start the labelled DEMO Home Assistant first and point everything at it")
    run.add_argument("--host", default="127.0.0.1", help="address of the Dagster UI (default 127.0.0.1)")
    run.add_argument("--port", type=int, default=3000, help="port of the Dagster UI (default 3000)")

    demo_server = commands.add_parser(
        "demo-server", help="serve the labelled DEMO Home Assistant (recorded demo data) until stopped"
    )
    demo_server.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    demo_server.add_argument("--port", type=int, default=8123, help="port to listen on (default 8123)")

    status = commands.add_parser("status", help="show the last sync runs and row counts")
    status.add_argument("--runs", type=int, default=5, help="how many sync runs to show")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return {"sync": _sync, "run": _run, "demo-server": _demo_server, "status": _status}[args.command](args)
    except (sa.exc.SQLAlchemyError, OSError) as exc:  # HA's errors are all handled in _sync
        cause = getattr(exc, "orig", None) or exc
        return _fail(EXIT_DATABASE, f"database error at {storage.safe_url(args.db_url)}: {cause}")
    except KeyboardInterrupt:
        return 130


def _fail(code: int, message: str) -> int:
    print(f"homeiq-pipeline: {message}", file=sys.stderr)
    return code


def _sync(args: argparse.Namespace) -> int:
    if args.demo:
        return _demo_sync(args)
    token = os.environ.get("HA_TOKEN")
    if not args.ha_url or not token:
        missing = " and ".join(n for n, v in (("HA_URL", args.ha_url), ("HA_TOKEN", token)) if not v)
        return _fail(EXIT_CONFIG, f"{missing} not set: export HA_URL=http://your-ha:8123 and HA_TOKEN=<a long-lived access token>")
    try:
        client = ha.HomeAssistantClient(
            args.ha_url, token, timeout=args.timeout, verify_tls=not args.insecure,
            ca_bundle=args.ca_bundle, max_frame_size=int(args.max_frame_mb * 2**20),
        )
    except ValueError as exc:
        return _fail(EXIT_CONFIG, str(exc))
    return _sync_from(client, args.db_url, args.instance, force=args.force, max_removed_share=args.max_removed_share)


def _demo_sync(args: argparse.Namespace) -> int:
    """One sync from the demo server, into a database of its own so demo rows never mix with real ones."""
    from .demo.server import DEMO_TOKEN, demo_home_assistant

    print("Starting the DEMO Home Assistant: recorded demo data, not a real home.")
    with demo_home_assistant() as server:
        env = launcher.demo_environment(server.url, DEMO_TOKEN)
        code = _sync_from(ha.HomeAssistantClient(server.url, DEMO_TOKEN), env["HOMEIQ_DB_URL"], env["HOMEIQ_INSTANCE"])
    if code == EXIT_OK:
        print(f"\nTry: homeiq-pipeline --db-url {env['HOMEIQ_DB_URL']} --instance demo status")
    return code


def _run(args: argparse.Namespace) -> int:
    if not args.demo:
        missing = [name for name in ("HA_URL", "HA_TOKEN") if not os.environ.get(name)]
        if missing:
            return _fail(
                EXIT_CONFIG,
                f"{' and '.join(missing)} not set: export HA_URL=http://your-ha:8123 and HA_TOKEN=<a long-lived "
                "access token>, or try the labelled demo with `homeiq-pipeline run --demo` (make demo)",
            )
        return launcher.run_dagster({}, args.host, args.port)
    from .demo.server import DEMO_LOCATION_NAME, DEMO_TOKEN, demo_home_assistant

    with demo_home_assistant() as server:
        print(f"DEMO Home Assistant at {server.url}: {DEMO_LOCATION_NAME}", flush=True)
        return launcher.run_dagster(launcher.demo_environment(server.url, DEMO_TOKEN), args.host, args.port)


def _sync_from(
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
    except (ha.CannotConnect, ha.RequestTimeout, ha.HomeAssistantStarting) as exc:
        return _fail(EXIT_UNAVAILABLE, f"{exc}. Nothing was written.")
    except ha.AuthenticationFailed as exc:
        return _fail(EXIT_AUTH, f"{exc}. Nothing was written.")
    except ha.HomeAssistantError as exc:
        return _fail(EXIT_HA_ERROR, f"{exc}. Nothing was written.")
    engine = storage.open_database(db_url)
    try:
        result = storage.sync_snapshot(
            engine, snapshot, instance=instance, force=force, max_removed_share=max_removed_share
        )
    except storage.StorageError as exc:
        return _fail(EXIT_REFUSED, f"{exc}. Nothing was written.")
    finally:
        engine.dispose()
    print(
        f"Synced Home Assistant {result.ha_version} ({result.location_name or 'unnamed'}) into "
        f"{storage.safe_url(db_url)} as instance {result.instance!r}: run {result.run_id}, "
        f"{time.monotonic() - started:.2f} s"
    )
    _print_table(
        ["table", "live", "added", "updated", "removed", "unchanged"],
        [[name, c.live, c.added, c.updated, c.removed, c.unchanged] for name, c in result.counts.items()],
    )
    return EXIT_OK


def _demo_server(args: argparse.Namespace) -> int:
    """The demo Home Assistant on its own (e.g. as a container of the compose demo profile)."""
    import signal
    import threading

    from .demo.server import DEMO_LOCATION_NAME, DEMO_TOKEN, demo_home_assistant

    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    with demo_home_assistant(host=args.host, port=args.port) as server:
        print(f"DEMO Home Assistant ({DEMO_LOCATION_NAME}) at {server.url}, token {DEMO_TOKEN!r}", flush=True)
        stopped.wait()
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    engine = storage.open_database(args.db_url)
    try:
        with engine.connect() as connection:
            runs = recent_sync_runs(connection, args.instance, args.runs)
            counts = row_counts(connection, args.instance)
    finally:
        engine.dispose()
    print(f"Mirror {storage.safe_url(args.db_url)}, instance {args.instance!r}")
    if not runs:
        print("No sync has run yet: run `homeiq-pipeline sync`.")
        return EXIT_OK
    _print_table(["table", "live", "removed"], [[name, c["live"], c["removed"]] for name, c in counts.items()])
    print()
    _print_table(
        ["run", "finished (UTC)", "outcome", "HA version", "added", "updated", "removed"],
        [
            [
                run["id"], f"{run['finished_at']:%Y-%m-%d %H:%M:%S}", run["outcome"], run["ha_version"],
                *(sum(t[k] for t in run["counts"].values()) for k in ("added", "updated", "removed")),
            ]
            for run in runs
        ],
    )
    return EXIT_OK


def _print_table(header: list[str], rows: list[list[object]]) -> None:
    cells = [header, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))


if __name__ == "__main__":
    sys.exit(main())
