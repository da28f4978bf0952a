"""The command line: every command, flag and help text; defaults come from the settings."""

from __future__ import annotations

import argparse

from .. import storage
from ..settings import Settings
from .demo import DEMO_CHANGES

DESCRIPTION = "Sync Home Assistant into the mirror once, watch it live, or show the mirror's status."


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="homeiq-pipeline", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    parser.add_argument(
        "--db-url",
        default=settings.db_url,
        help="SQLAlchemy URL of the mirror (env HOMEIQ_DB_URL; default: data/homeiq.db under HOMEIQ_DATA_DIR)",
    )
    parser.add_argument(
        "--instance",
        default=settings.instance,
        help="name of this Home Assistant in the mirror (env HOMEIQ_INSTANCE; default: home)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    sync = commands.add_parser("sync", help="take one snapshot of Home Assistant and store it")
    _add_connection_options(sync, settings)
    sync.add_argument(
        "--force", action="store_true", help="store the snapshot even if it removes most devices or entities"
    )
    sync.add_argument(
        "--max-removed-share",
        type=float,
        default=storage.DEFAULT_MAX_REMOVED_SHARE,
        help="share of devices or entities a sync may remove without --force (default 0.5)",
    )
    sync.add_argument(
        "--demo",
        action="store_true",
        help="sync the labelled DEMO Home Assistant (recorded demo data, not a real home) into data/demo.db",
    )

    run = commands.add_parser("run", help="start the Dagster UI and daemon; the reconnect sensor syncs within a minute")
    run.add_argument(
        "--demo", action="store_true", help="start the labelled DEMO Home Assistant first and point everything at it"
    )
    run.add_argument("--host", default="127.0.0.1", help="address of the Dagster UI (default 127.0.0.1)")
    run.add_argument("--port", type=int, default=3000, help="port of the Dagster UI (default 3000)")
    run.add_argument(
        "--watch",
        action="store_true",
        help="also run the live-mode watcher (`homeiq-pipeline watch`) against it; --demo always does",
    )
    run.add_argument(
        "--demo-ha-port",
        type=int,
        default=8123,
        help="with --demo: port of the demo Home Assistant, for `demo-change` (default 8123)",
    )

    demo_server = commands.add_parser(
        "demo-server", help="serve the labelled DEMO Home Assistant (recorded demo data) until stopped"
    )
    demo_server.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    demo_server.add_argument("--port", type=int, default=8123, help="port to listen on (default 8123)")

    watch = commands.add_parser(
        "watch", help="hold a websocket to Home Assistant and request a sync through Dagster when its registries change"
    )
    _add_connection_options(watch, settings)
    watch.add_argument(
        "--home",
        default=None,
        help="the home (Dagster partition) to sync; its HA_URL comes from homes.yaml if there is one "
        "(default: every home of homes.yaml, else HOMEIQ_INSTANCE, else home)",
    )
    watch.add_argument(
        "--debounce",
        type=float,
        default=settings.watch_debounce_seconds,
        help="seconds of quiet after the last change before syncing (env HA_WATCH_DEBOUNCE_SECONDS; default 2)",
    )
    watch.add_argument(
        "--dagster-url",
        default=settings.dagster_url,
        help="the Dagster webserver that launches the syncs (env HOMEIQ_DAGSTER_URL; default http://127.0.0.1:3000)",
    )
    watch.add_argument(
        "--direct", action="store_true", help="sync in this process into --db-url instead of through Dagster"
    )
    watch.add_argument(
        "--hold-on-auth-failure",
        action="store_true",
        help="after a rejected token or an untrusted TLS certificate, wait for SIGTERM instead of "
        "exiting (exit code 4 or 2 then), so a process manager that restarts whatever exits cannot "
        "make it log in again and again",
    )
    watch.add_argument(
        "--heartbeat-file",
        default=None,
        help="touch this file every second while every home is watched (a container health check "
        "reads its age: a watcher held after a rejected token stops touching it)",
    )

    demo_change = commands.add_parser(
        "demo-change", help="change the DEMO Home Assistant's registries, to see live mode at work"
    )
    demo_change.add_argument(
        "--ha-url", default="http://127.0.0.1:8123", help="the demo Home Assistant (default http://127.0.0.1:8123)"
    )
    demo_change.add_argument("change", choices=sorted(DEMO_CHANGES), help="what to change")
    demo_change.add_argument(
        "value",
        help="a name (rename-device, add-entity, create-area), an entity_id "
        "(remove-entity), or a config entry's domain or entry_id (disable-entry, enable-entry)",
    )
    demo_change.add_argument("--device-id", help="rename-device: which device (default: the first one)")

    status = commands.add_parser("status", help="show the last sync runs and row counts")
    status.add_argument("--runs", type=int, default=5, help="how many sync runs to show")
    return parser


def _add_connection_options(command: argparse.ArgumentParser, settings: Settings) -> None:
    command.add_argument("--ha-url", default=settings.ha_url, help="e.g. http://homeassistant.local:8123 (env HA_URL)")
    command.add_argument(
        "--timeout",
        type=float,
        default=settings.ha_timeout,
        help="seconds to wait for each answer (env HA_TIMEOUT; default 30)",
    )
    command.add_argument(
        "--max-frame-mb",
        type=float,
        default=settings.ha_max_frame_mb,
        help="largest websocket frame accepted, MiB (env HA_MAX_FRAME_MB; default 64)",
    )
    command.add_argument(
        "--ca-bundle", default=settings.ha_ca_bundle, help="CA file to verify HA's TLS certificate (env HA_CA_BUNDLE)"
    )
    command.add_argument(
        "--insecure",
        action="store_true",
        default=not settings.ha_verify_tls,
        help="do NOT verify HA's TLS certificate (env HA_VERIFY_TLS=false); logs a warning",
    )
