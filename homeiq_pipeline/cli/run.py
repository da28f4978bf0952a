"""`homeiq-pipeline run`: the Dagster UI and daemon with the live-mode watcher; `--demo` starts the
labelled demo Home Assistant first and points everything at it, on an instance of its own.

Before Dagster starts: one `run` per DAGSTER_HOME and port (run_lock.py), and one look at each
home (preflight.py). The watcher starts once the webserver answers, so it never asks an absent one.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from .. import homeassistant as ha
from .. import launcher
from ..settings import Settings, SettingsError
from ..watch import DagsterRuns
from .connections import Connect, connections
from .exits import EXIT_CONFIG, EXIT_OK, fail
from .preflight import check_homes
from .run_lock import AlreadyRunning, running_alone
from .watch import WatcherThreads, watchers_for


def command(args: argparse.Namespace, settings: Settings) -> int:
    url = local_dagster_url(args.host, args.port)
    homes: dict[str, Connect] = {}
    if not args.demo:
        try:  # every home's settings, checked before Dagster starts
            homes = connections(args, settings)
        except SettingsError as exc:
            hint = (
                ""
                if settings.homes_file
                else ", or try the labelled demo with `homeiq-pipeline run --demo` (make demo)"
            )
            return fail(EXIT_CONFIG, f"{exc}{hint}")
    home = launcher.dagster_home(settings, demo=args.demo)
    # The other instance of this checkout, to name its `run` if it holds the port.
    other = launcher.dagster_home(settings, demo=not args.demo)
    try:
        with running_alone(home, url, args.host, args.port, other_homes=[other]):
            if args.demo:
                return _demo(args, settings, home, url)
            if args.check and (code := check_homes(homes)) != EXIT_OK:
                return code
            env = {"HOMEIQ_DB_URL": settings.db_url}
            return _serve(args, home, env, url, homes, debounce=settings.watch_debounce_seconds)
    except AlreadyRunning as exc:
        return fail(EXIT_CONFIG, str(exc))


def _demo(args: argparse.Namespace, settings: Settings, home: Path, url: str) -> int:
    from ..demo.server import DEMO_LOCATION_NAME, DEMO_TOKEN, demo_home_assistant

    try:
        server = demo_home_assistant(port=args.demo_ha_port).start()
    except OSError as exc:
        return fail(
            EXIT_CONFIG,
            f"cannot start the demo Home Assistant on port {args.demo_ha_port}: {exc} "
            "(pick another with --demo-ha-port)",
        )
    try:
        env = launcher.demo_environment(settings, server.url, DEMO_TOKEN)
        print(f"DEMO Home Assistant at {server.url}: {DEMO_LOCATION_NAME}", flush=True)
        print(
            f"Live mode: try `homeiq-pipeline demo-change --ha-url {server.url} rename-device 'Renamed lamp'`",
            flush=True,
        )
        homes: dict[str, Connect] = {env["HOMEIQ_INSTANCE"]: lambda: ha.HomeAssistantClient(server.url, DEMO_TOKEN)}
        return _serve(args, home, env, url, homes, debounce=settings.watch_debounce_seconds)
    finally:
        server.stop()


def _serve(
    args: argparse.Namespace,
    home: Path,
    env: Mapping[str, str],
    url: str,
    homes: dict[str, Connect],
    *,
    debounce: float,
) -> int:
    """`dagster dev` until it stops; with the watcher (unless --no-watch), started once the webserver answers."""
    if not args.watch:
        return launcher.run_dagster(home, env, args.host, args.port)
    webserver = DagsterRuns(url)
    watchers = watchers_for(homes, lambda _: webserver, debounce)
    with WatcherThreads(watchers, ready=webserver.answers):
        return launcher.run_dagster(home, env, args.host, args.port)


def local_dagster_url(host: str, port: int) -> str:
    """The Dagster webserver this process starts, as a client reaches it: a wildcard address
    (0.0.0.0, ::) is not one to connect to, so its loopback is."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
