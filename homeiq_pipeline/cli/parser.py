"""The command line: every command, flag and help text; defaults come from the settings."""

from __future__ import annotations

import argparse
from typing import Any

from .. import storage
from ..settings import Settings
from .demo import DEMO_CHANGES

DESCRIPTION = "Sync Home Assistant into the mirror once, watch it live, or show the mirror's status."
HOLD_HELP = (
    "after a rejected token or an untrusted TLS certificate, wait for SIGTERM instead of exiting (exit code 4 or 2 "
    "then), so a process manager that restarts whatever exits cannot make it log in again and again"
)
HEARTBEAT_HELP = (
    "touch this file every second while every home is watched (a container health check reads its age: a watcher "
    "held after a rejected token stops touching it)"
)
DEMO_VALUE_HELP = (
    "a name (rename-device, add-entity, create-area), an entity_id (remove-entity), or a config entry's domain or "
    "entry_id (disable-entry, enable-entry)"
)


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="homeiq-pipeline", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="log the details too (DEBUG)")
    # Not %(default)s: a database URL may hold a password.
    _setting(parser, "--db-url", settings.db_url, "HOMEIQ_DB_URL", "SQLAlchemy URL of the mirror", show=False)
    _setting(parser, "--instance", settings.instance, "HOMEIQ_INSTANCE", "name of this Home Assistant in the mirror")
    commands = parser.add_subparsers(dest="command", required=True)

    sync = commands.add_parser("sync", help="take one snapshot of Home Assistant and store it")
    _add_connection_options(sync, settings)
    sync.add_argument("--force", action="store_true", help="store the snapshot even if it removes most devices")
    share = storage.DEFAULT_MAX_REMOVED_SHARE
    sync.add_argument(
        "--max-removed-share",
        type=float,
        default=share,
        help="share of devices or entities a sync may remove without --force (default %(default)s)",
    )
    sync.add_argument(
        "--demo",
        action="store_true",
        help="sync the labelled DEMO Home Assistant (recorded demo data, not a real home) into data/demo.db",
    )

    run = commands.add_parser("run", help="start the Dagster UI and daemon; the reconnect sensor syncs within a minute")
    run.add_argument(
        "--demo",
        action="store_true",
        help="start the labelled DEMO Home Assistant first, and use it, on a Dagster instance (data/demo/dagster) "
        "and database (data/demo.db) of its own",
    )
    run.add_argument("--host", default="127.0.0.1", help="address of the Dagster UI (default %(default)s)")
    run.add_argument("--port", type=int, default=3000, help="port of the Dagster UI (default %(default)s)")
    run.add_argument(
        "--watch",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the live-mode watcher too, once the UI answers (default; --no-watch leaves it out)",
    )
    run.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="connect to each home once before starting, and stop if its token is rejected or its certificate "
        "is not trusted (default; --no-check starts anyway)",
    )
    run.add_argument(
        "--demo-ha-port",
        type=int,
        default=8123,
        help="with --demo: port of the demo Home Assistant, for `demo-change` (default %(default)s)",
    )

    demo_server = commands.add_parser("demo-server", help="serve the labelled DEMO Home Assistant until stopped")
    demo_server.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    demo_server.add_argument("--port", type=int, default=8123, help="port to listen on (default %(default)s)")

    watch = commands.add_parser(
        "watch", help="hold a websocket to Home Assistant and request a sync through Dagster when its registries change"
    )
    _add_connection_options(watch, settings)
    watch.add_argument(
        "--home",
        default=None,
        help="the home (Dagster partition) to sync (default: every home of homes.yaml, else HOMEIQ_INSTANCE)",
    )
    _setting(
        watch,
        "--debounce",
        settings.watch_debounce_seconds,
        "HA_WATCH_DEBOUNCE_SECONDS",
        "seconds of quiet after the last change before syncing",
        type=float,
    )
    _setting(
        watch,
        "--dagster-url",
        settings.dagster_url,
        "HOMEIQ_DAGSTER_URL",
        "the Dagster webserver that launches the syncs",
    )
    watch.add_argument("--direct", action="store_true", help="sync in this process into --db-url, without Dagster")
    watch.add_argument("--hold-on-auth-failure", action="store_true", help=HOLD_HELP)
    watch.add_argument("--heartbeat-file", default=None, help=HEARTBEAT_HELP)

    demo_change = commands.add_parser(
        "demo-change", help="change the DEMO Home Assistant's registries, to see live mode at work"
    )
    demo_change.add_argument(
        "--ha-url", default="http://127.0.0.1:8123", help="the demo Home Assistant (default %(default)s)"
    )
    demo_change.add_argument("change", choices=sorted(DEMO_CHANGES), help="what to change")
    demo_change.add_argument("value", help=DEMO_VALUE_HELP)
    demo_change.add_argument("--device-id", help="rename-device: which device (default: the first one)")

    status = commands.add_parser("status", help="show the last sync runs and row counts")
    status.add_argument("--runs", type=int, default=5, help="how many sync runs to show")
    status.add_argument("--demo", action="store_true", help="show the DEMO mirror (data/demo.db) instead")
    return parser


def _add_connection_options(command: argparse.ArgumentParser, settings: Settings) -> None:
    _setting(command, "--ha-url", settings.ha_url, "HA_URL", "e.g. http://homeassistant.local:8123", show=False)
    _setting(command, "--timeout", settings.ha_timeout, "HA_TIMEOUT", "seconds to wait for each answer", type=float)
    _setting(
        command,
        "--max-frame-mb",
        settings.ha_max_frame_mb,
        "HA_MAX_FRAME_MB",
        "largest websocket frame accepted, MiB",
        type=float,
    )
    _setting(command, "--ca-bundle", settings.ha_ca_bundle, "HA_CA_BUNDLE", "CA file for HA's certificate", show=False)
    command.add_argument(
        "--insecure",
        action="store_true",
        default=not settings.ha_verify_tls,
        help="do NOT verify HA's TLS certificate (env HA_VERIFY_TLS=false); logs a warning",
    )


def _setting(
    command: argparse.ArgumentParser,
    flag: str,
    default: Any,
    variable: str,
    text: str,
    *,
    show: bool = True,
    **options: Any,
) -> None:
    """A flag that overrides a setting: its default is the setting's value, its help names the variable."""
    shown = "; default %(default)s" if show else ""
    command.add_argument(flag, default=default, help=f"{text} (env {variable}{shown})", **options)
