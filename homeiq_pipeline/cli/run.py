"""`homeiq-pipeline run`: the Dagster UI and daemon, optionally with the watcher; `--demo` starts
the labelled demo Home Assistant first and points everything at it."""

from __future__ import annotations

import argparse

from .. import homeassistant as ha
from .. import launcher
from ..settings import Settings, SettingsError
from ..watch import DagsterRuns
from .connections import connections
from .exits import EXIT_CONFIG, fail
from .watch import WatcherThreads, watchers_for


def command(args: argparse.Namespace, settings: Settings) -> int:
    url = local_dagster_url(args.host, args.port)
    if args.demo:
        return _demo(args, settings, url)
    try:  # every home's settings, checked before Dagster starts
        homes = connections(args, settings)
    except SettingsError as exc:
        hint = "" if settings.homes_file else ", or try the labelled demo with `homeiq-pipeline run --demo` (make demo)"
        return fail(EXIT_CONFIG, f"{exc}{hint}")
    if not args.watch:
        return launcher.run_dagster(settings, {}, args.host, args.port)
    with WatcherThreads(watchers_for(homes, lambda _: DagsterRuns(url))):
        return launcher.run_dagster(settings, {}, args.host, args.port)


def _demo(args: argparse.Namespace, settings: Settings, url: str) -> int:
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
        homes = {env["HOMEIQ_INSTANCE"]: lambda: ha.HomeAssistantClient(server.url, DEMO_TOKEN)}
        with WatcherThreads(watchers_for(homes, lambda _: DagsterRuns(url))):
            return launcher.run_dagster(settings, env, args.host, args.port)
    finally:
        server.stop()


def local_dagster_url(host: str, port: int) -> str:
    """The Dagster webserver this process starts, as a client reaches it: a wildcard address
    (0.0.0.0, ::) is not one to connect to, so its loopback is."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
