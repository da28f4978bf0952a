"""`homeiq-pipeline`: sync Home Assistant into the mirror once, watch it live, or show the mirror's status.

The token is read from HA_TOKEN only: a flag would land in shell history and process lists.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

import sqlalchemy as sa

from . import homeassistant as ha
from . import launcher, settings, storage
from .homes import DEFAULT_TOKEN_ENV, Home, HomesFileError
from .storage.queries import recent_sync_runs, row_counts
from .watch import DagsterRuns, Watcher, WatchSettings
from .watch.dagster_runs import DEFAULT_DAGSTER_URL
from .watch.loop import SyncRequester

# Exit codes, so scripts can tell a transient failure from one that needs a person.
EXIT_OK = 0
EXIT_CONFIG = 2  # missing or invalid settings, or HA's TLS certificate is not trusted (the CA bundle)
EXIT_UNAVAILABLE = 3  # unreachable, timed out or still starting: try again later
EXIT_AUTH = 4  # the token was rejected
EXIT_HA_ERROR = 5  # HA answered something we cannot use
EXIT_REFUSED = 6  # the data-loss guard refused the snapshot, or it could not be stored
EXIT_DATABASE = 7  # the database could not be opened or written
# `watch` ends with EXIT_OK when stopped (SIGTERM, Ctrl-C), EXIT_CONFIG (also when HA's TLS
# certificate is not trusted), or EXIT_AUTH when HA rejects the token (it then stops at once
# rather than feed HA's IP ban).

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
    _add_connection_options(sync)
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
    run.add_argument("--watch", action="store_true",
                     help="also run the live-mode watcher (`homeiq-pipeline watch`) against it; --demo always does")
    run.add_argument("--demo-ha-port", type=int, default=8123,
                     help="with --demo: port of the demo Home Assistant, for `demo-change` (default 8123)")

    demo_server = commands.add_parser(
        "demo-server", help="serve the labelled DEMO Home Assistant (recorded demo data) until stopped"
    )
    demo_server.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    demo_server.add_argument("--port", type=int, default=8123, help="port to listen on (default 8123)")

    watch = commands.add_parser(
        "watch", help="hold a websocket to Home Assistant and request a sync through Dagster when its registries change"
    )
    _add_connection_options(watch)
    watch.add_argument("--home", default=None,
                       help="the home (Dagster partition) to sync; its HA_URL comes from homes.yaml if there is one "
                       "(default: every home of homes.yaml, else HOMEIQ_INSTANCE, else home)")
    watch.add_argument("--debounce", type=float, default=float(os.environ.get("HA_WATCH_DEBOUNCE_SECONDS") or 2),
                       help="seconds of quiet after the last change before syncing (env HA_WATCH_DEBOUNCE_SECONDS; default 2)")
    watch.add_argument("--dagster-url", default=os.environ.get("HOMEIQ_DAGSTER_URL") or DEFAULT_DAGSTER_URL,
                       help=f"the Dagster webserver that launches the syncs (env HOMEIQ_DAGSTER_URL; default {DEFAULT_DAGSTER_URL})")
    watch.add_argument("--direct", action="store_true",
                       help="sync in this process into --db-url instead of through Dagster")
    watch.add_argument("--hold-on-auth-failure", action="store_true",
                       help="after a rejected token or an untrusted TLS certificate, wait for SIGTERM instead of "
                       "exiting (exit code 4 or 2 then), so a process manager that restarts whatever exits cannot "
                       "make it log in again and again")
    watch.add_argument("--heartbeat-file", default=None,
                       help="touch this file every second while every home is watched (a container health check "
                       "reads its age: a watcher held after a rejected token stops touching it)")

    demo_change = commands.add_parser(
        "demo-change", help="change the DEMO Home Assistant's registries, to see live mode at work"
    )
    demo_change.add_argument("--ha-url", default="http://127.0.0.1:8123",
                             help="the demo Home Assistant (default http://127.0.0.1:8123)")
    demo_change.add_argument("change", choices=sorted(DEMO_CHANGES), help="what to change")
    demo_change.add_argument("value", help="a name (rename-device, add-entity, create-area), an entity_id "
                             "(remove-entity), or a config entry's domain or entry_id (disable-entry, enable-entry)")
    demo_change.add_argument("--device-id", help="rename-device: which device (default: the first one)")

    status = commands.add_parser("status", help="show the last sync runs and row counts")
    status.add_argument("--runs", type=int, default=5, help="how many sync runs to show")
    return parser


def _add_connection_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--ha-url", default=os.environ.get("HA_URL"), help="e.g. http://homeassistant.local:8123 (env HA_URL)")
    command.add_argument("--timeout", type=float, default=settings.ha_timeout(),
                         help="seconds to wait for each answer (env HA_TIMEOUT; default 30)")
    command.add_argument("--max-frame-mb", type=float,
                         default=settings.ha_max_frame_mb(),
                         help="largest websocket frame accepted, MiB (env HA_MAX_FRAME_MB; default 64)")
    command.add_argument("--ca-bundle", default=settings.ha_ca_bundle(),
                         help="CA file to verify HA's TLS certificate (env HA_CA_BUNDLE)")
    command.add_argument("--insecure", action="store_true", default=not settings.ha_verify_tls(),
                         help="do NOT verify HA's TLS certificate (env HA_VERIFY_TLS=false); logs a warning")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        commands = {"sync": _sync, "run": _run, "watch": _watch, "demo-server": _demo_server,
                    "demo-change": _demo_change, "status": _status}
        return commands[args.command](args)
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
    try:
        connect = _connector(args, _the_home(args, args.instance))
    except _ConfigError as exc:
        return _fail(EXIT_CONFIG, str(exc))
    return _sync_from(connect(), args.db_url, args.instance, force=args.force, max_removed_share=args.max_removed_share)


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
        try:  # every home's settings, checked before Dagster starts
            connections = _connections(args)
        except _ConfigError as exc:
            hint = "" if settings.homes_file() else ", or try the labelled demo with `homeiq-pipeline run --demo` (make demo)"
            return _fail(EXIT_CONFIG, f"{exc}{hint}")
        if not args.watch:
            return launcher.run_dagster({}, args.host, args.port)
        with _WatcherThreads(_watchers(connections, lambda _: DagsterRuns(_local_dagster_url(args)))):
            return launcher.run_dagster({}, args.host, args.port)
    from .demo.server import DEMO_LOCATION_NAME, DEMO_TOKEN, demo_home_assistant

    try:
        server = demo_home_assistant(port=args.demo_ha_port).start()
    except OSError as exc:
        return _fail(EXIT_CONFIG, f"cannot start the demo Home Assistant on port {args.demo_ha_port}: {exc} "
                     "(pick another with --demo-ha-port)")
    try:
        env = launcher.demo_environment(server.url, DEMO_TOKEN)
        print(f"DEMO Home Assistant at {server.url}: {DEMO_LOCATION_NAME}", flush=True)
        print(f"Live mode: try `homeiq-pipeline demo-change --ha-url {server.url} rename-device 'Renamed lamp'`",
              flush=True)
        connections = {env["HOMEIQ_INSTANCE"]: lambda: ha.HomeAssistantClient(server.url, DEMO_TOKEN)}
        with _WatcherThreads(_watchers(connections, lambda _: DagsterRuns(_local_dagster_url(args)))):
            return launcher.run_dagster(env, args.host, args.port)
    finally:
        server.stop()


def _local_dagster_url(args: argparse.Namespace) -> str:
    """The Dagster webserver this process starts, as a client reaches it: a wildcard address
    (0.0.0.0, ::) is not one to connect to, so its loopback is."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(args.host, args.host)
    return f"http://[{host}]:{args.port}" if ":" in host else f"http://{host}:{args.port}"


class _ConfigError(Exception):
    """Settings missing or invalid (exit code 2)."""


def _the_home(args: argparse.Namespace, name: str) -> Home:
    """The one home of HA_URL (or --ha-url), HA_TOKEN and the connection options."""
    return Home(name, getattr(args, "ha_url", None) or os.environ.get("HA_URL") or None, DEFAULT_TOKEN_ENV,
                not getattr(args, "insecure", not settings.ha_verify_tls()),
                getattr(args, "ca_bundle", settings.ha_ca_bundle()))


def _homes(args: argparse.Namespace, only: str | None = None) -> list[Home]:
    """Every home of homes.yaml (or only the one named `only`) if there is one, else the one of
    HA_URL/HA_TOKEN named `only` or HOMEIQ_INSTANCE. Raises _ConfigError naming what is wrong."""
    path = settings.homes_file()
    if path is None:
        return [_the_home(args, only or settings.instance())]
    try:
        homes = settings.homes()
    except HomesFileError as exc:
        raise _ConfigError(str(exc)) from None
    if only is None:
        return homes
    if only not in (names := [home.name for home in homes]):
        raise _ConfigError(f"{path} has no home {only!r} (it has {', '.join(names)}); pass --home")
    return [home for home in homes if home.name == only]


def _connector(args: argparse.Namespace, home: Home, homes_file: Path | None = None) -> Callable[[], ha.HomeAssistantClient]:
    """New connections to `home`'s Home Assistant (from `homes_file`, if given). Raises
    _ConfigError naming a missing variable (never its value) or an invalid URL."""
    token = os.environ.get(home.token_env)
    if not home.url or not token:
        missing = " and ".join(n for n, v in (("HA_URL", home.url), (home.token_env, token)) if not v)
        if homes_file is None:
            raise _ConfigError(f"{missing} not set: export HA_URL=http://your-ha:8123 and "
                               f"{home.token_env}=<a long-lived access token>")
        raise _ConfigError(f"{missing} not set: export it with the access token of home {home.name!r} "
                           f"({homes_file} names it as its token_env)")
    timeout = getattr(args, "timeout", settings.ha_timeout())
    max_frame = int(getattr(args, "max_frame_mb", settings.ha_max_frame_mb()) * 2**20)

    def connect() -> ha.HomeAssistantClient:
        return ha.HomeAssistantClient(home.url or "", token, timeout=timeout, verify_tls=home.verify_tls,
                                      ca_bundle=home.ca_bundle, max_frame_size=max_frame)

    try:
        connect()  # the URL is checked here, once (no connection is made yet)
    except ValueError as exc:
        raise _ConfigError(str(exc)) from None
    return connect


def _connections(args: argparse.Namespace, only: str | None = None) -> dict[str, Callable[[], ha.HomeAssistantClient]]:
    """How to connect to each home to sync or watch, by name (see _homes); raises _ConfigError."""
    return {home.name: _connector(args, home, settings.homes_file()) for home in _homes(args, only)}


def _watchers(
    connections: dict[str, Callable[[], ha.HomeAssistantClient]],
    runs_for: Callable[[Callable[[], ha.HomeAssistantClient]], SyncRequester],
    debounce: float = WatchSettings.debounce,
) -> list[Watcher]:
    """One watcher per home (each its own websocket), all stopped by one flag."""
    stop = threading.Event()
    return [Watcher(connect, runs_for(connect), WatchSettings(home=home, debounce=debounce), stop)
            for home, connect in connections.items()]


class _WatcherThreads:
    """The watchers in threads of this process, stopped and joined on exit. A watcher stopped by
    a rejected token or an untrusted certificate ends its thread (it logs why): `stopped_by`."""

    def __init__(self, watchers: list[Watcher]) -> None:
        _log_watcher()
        self.watchers = watchers
        self.stopped_by: dict[str, ha.HomeAssistantError] = {}
        self._threads = [threading.Thread(target=self._run, args=(w,), name=f"homeiq-watch-{w.settings.home}",
                                          daemon=True) for w in watchers]

    def _run(self, watcher: Watcher) -> None:
        try:
            watcher.run()
        except (ha.AuthenticationFailed, ha.CertificateNotTrusted) as exc:
            self.stopped_by[watcher.settings.home] = exc  # logged by the watcher; the sensor reports it too

    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        for watcher in self.watchers:
            watcher.stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


def _log_watcher() -> None:
    """The watcher logs each decision (INFO) with a timestamp, whatever -v says."""
    logger = logging.getLogger("homeiq_pipeline.watch")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s watch: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _watch(args: argparse.Namespace) -> int:
    try:
        connections = _connections(args, args.home)
    except _ConfigError as exc:
        return _fail(EXIT_CONFIG, str(exc))
    if args.debounce < 0:
        return _fail(EXIT_CONFIG, f"--debounce must be 0 or more seconds, not {args.debounce:g}")

    def runs_for(connect: Callable[[], ha.HomeAssistantClient]) -> SyncRequester:
        if args.direct:
            from .watch.direct import DirectSyncs

            return DirectSyncs(connect, args.db_url)
        return DagsterRuns(args.dagster_url)

    watchers = _watchers(connections, runs_for, args.debounce)
    stop = watchers[0].stop
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    target = f"directly into {storage.safe_url(args.db_url)}" if args.direct else f"through Dagster at {args.dagster_url}"
    if args.heartbeat_file:
        Path(args.heartbeat_file).touch()  # from the start: a watcher held at once must go stale too
    with _WatcherThreads(watchers) as threads:
        for home in connections:
            logging.getLogger("homeiq_pipeline.watch").info("watching home %r, syncing %s after %g s of quiet", home, target, args.debounce)
        while threads.alive() and not stop.wait(1):  # until stopped, or every watcher stopped itself
            if args.heartbeat_file and not threads.stopped_by:
                Path(args.heartbeat_file).touch()
        codes = [EXIT_OK]
        for home, exc in threads.stopped_by.items():
            rejected = isinstance(exc, ha.AuthenticationFailed)
            fix = "the token" if rejected else "the CA bundle (HA_CA_BUNDLE, ca_bundle)"
            codes.append(_fail(EXIT_AUTH if rejected else EXIT_CONFIG,
                               f"home {home!r}: {exc}. The watcher stopped: fix {fix}, then start it again."))
        if threads.stopped_by and args.hold_on_auth_failure:
            stop.wait()  # not trying again: only a person can fix it
    return EXIT_AUTH if EXIT_AUTH in codes else max(codes)


# demo-change: HA's own websocket commands, sent to the demo server (which implements them).
DEMO_CHANGES = ("rename-device", "add-entity", "remove-entity", "create-area", "disable-entry", "enable-entry")


def _demo_change(args: argparse.Namespace) -> int:
    from .demo.server import DEMO_LOCATION_NAME, DEMO_TOKEN

    try:
        with ha.HomeAssistantClient(args.ha_url, DEMO_TOKEN) as client:
            if client.command("get_config").get("location_name") != DEMO_LOCATION_NAME:
                return _fail(EXIT_CONFIG, f"{args.ha_url} is not the demo Home Assistant: demo-change changes only the demo")
            result = _apply_demo_change(client, args)
    except ha.AuthenticationFailed:
        return _fail(EXIT_AUTH, f"{args.ha_url} rejected the demo token: is it the demo Home Assistant?")
    except ha.CommandFailed as exc:
        return _fail(EXIT_HA_ERROR, str(exc))
    except (ha.CannotConnect, ha.RequestTimeout) as exc:
        return _fail(EXIT_UNAVAILABLE, f"{exc} (is `homeiq-pipeline run --demo` or `demo-server` running?)")
    print(result)
    return EXIT_OK


def _apply_demo_change(client: ha.HomeAssistantClient, args: argparse.Namespace) -> str:
    value = args.value
    if args.change == "rename-device":
        device_id = args.device_id or client.command("config/device_registry/list")[0]["id"]
        client.command("config/device_registry/update", device_id=device_id, name_by_user=value)
        return f"device {device_id} is now named {value!r}"
    if args.change == "add-entity":
        helper = client.command("input_boolean/create", name=value)
        return f"added entity input_boolean.{helper['id']}"
    if args.change == "remove-entity":
        client.command("config/entity_registry/remove", entity_id=value)
        return f"removed entity {value}"
    if args.change == "create-area":
        area = client.command("config/area_registry/create", name=value)
        return f"created area {area['area_id']}"
    entries = client.command("config_entries/get")
    entry = next((e for e in entries if value in (e["entry_id"], e["domain"])), None)
    if entry is None:
        raise ha.CommandFailed("config_entries/disable", "not_found", f"no config entry {value!r}")
    disabled_by = "user" if args.change == "disable-entry" else None
    client.command("config_entries/disable", entry_id=entry["entry_id"], disabled_by=disabled_by)
    return f"config entry {entry['title']} ({entry['domain']}) {'disabled' if disabled_by else 'enabled'}"


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
    except ha.CertificateNotTrusted as exc:  # retrying cannot help: a setting (the CA bundle) must change
        return _fail(EXIT_CONFIG, f"{exc}. Nothing was written.")
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
        with storage.read_snapshot(engine) as connection:
            runs = recent_sync_runs(connection, args.instance, args.runs, outcome=None)  # interrupted ones too
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
