"""`homeiq-pipeline watch`: live mode, one watcher (one websocket) per home, each asking Dagster
(or, with --direct, this process) for a sync when its Home Assistant announces a change."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Self

from .. import homeassistant as ha
from .. import storage
from ..settings import Settings
from ..watch import DagsterRuns, Watcher, WatchSettings
from ..watch.loop import SyncRequester
from .connections import Connect, connections
from .exits import EXIT_CONFIG, EXIT_OK, FOR_CAUSE, fail, worst

log = logging.getLogger("homeiq_pipeline.watch")


def command(args: argparse.Namespace, settings: Settings) -> int:
    homes = connections(args, settings, args.home)
    if args.debounce < 0:
        return fail(EXIT_CONFIG, f"--debounce must be 0 or more seconds, not {args.debounce:g}")

    def runs_for(connect: Connect) -> SyncRequester:
        if args.direct:
            from ..watch.direct import DirectSyncs

            return DirectSyncs(connect, args.db_url)
        return DagsterRuns(args.dagster_url)

    watchers = watchers_for(homes, runs_for, args.debounce)
    stop = watchers[0].stop
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    target = (
        f"directly into {storage.safe_url(args.db_url)}" if args.direct else f"through Dagster at {args.dagster_url}"
    )
    if args.heartbeat_file:
        Path(args.heartbeat_file).touch()  # from the start: a watcher held at once must go stale too
    with WatcherThreads(watchers) as threads:
        for home in homes:
            log.info("watching home %r, syncing %s after %g s of quiet", home, target, args.debounce)
        while threads.alive() and not stop.wait(1):  # until stopped, or every watcher stopped itself
            if args.heartbeat_file and not threads.stopped_by:
                Path(args.heartbeat_file).touch()
        codes = [EXIT_OK]
        for home, exc in threads.stopped_by.items():
            fix = "the token" if exc.cause is ha.Cause.TOKEN_REJECTED else "the CA bundle (HA_CA_BUNDLE, ca_bundle)"
            codes.append(
                fail(
                    FOR_CAUSE[exc.cause], f"home {home!r}: {exc}. The watcher stopped: fix {fix}, then start it again."
                )
            )
        if threads.stopped_by and args.hold_on_auth_failure:
            stop.wait()  # not trying again: only a person can fix it
    return worst(codes)


def watchers_for(
    homes: dict[str, Connect], runs_for: Callable[[Connect], SyncRequester], debounce: float = WatchSettings.debounce
) -> list[Watcher]:
    """One watcher per home (each its own websocket), all stopped by one flag."""
    stop = threading.Event()
    return [
        Watcher(connect, runs_for(connect), WatchSettings(home=home, debounce=debounce), stop)
        for home, connect in homes.items()
    ]


class WatcherThreads:
    """The watchers in threads of this process, stopped and joined on exit. A watcher stopped by
    what only a person can fix (a rejected token, an untrusted certificate) ends its thread (it
    logs why): `stopped_by`. With `ready`, they start only once it returns true (asked every
    `every` seconds): `run` starts them once its webserver answers, not before."""

    def __init__(self, watchers: list[Watcher], ready: Callable[[], bool] | None = None, every: float = 0.5) -> None:
        _log_watcher()
        self.watchers = watchers
        self.stopped_by: dict[str, ha.HomeAssistantError] = {}
        self._threads = [
            threading.Thread(target=self._run, args=(w,), name=f"homeiq-watch-{w.settings.home}", daemon=True)
            for w in watchers
        ]
        self._ready, self._every = ready, every
        self._closing = threading.Event()
        self._starter = threading.Thread(target=self._start_when_ready, name="homeiq-watch-start", daemon=True)

    def _run(self, watcher: Watcher) -> None:
        try:
            watcher.run()
        except ha.HomeAssistantError as exc:  # only those a person must fix end a watcher
            self.stopped_by[watcher.settings.home] = exc  # logged by the watcher; the sensor reports it too

    def _start_when_ready(self) -> None:
        while not self._closing.is_set():
            if self._ready is None or self._ready():
                if not self._closing.is_set():
                    for thread in self._threads:
                        thread.start()
                return
            self._closing.wait(self._every)

    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def __enter__(self) -> Self:
        if self._ready is None:
            self._start_when_ready()
        else:
            self._starter.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._closing.set()
        if self._starter.is_alive():
            self._starter.join()  # it starts the watchers or gives up, then we stop what it started
        for watcher in self.watchers:
            watcher.stop.set()
        for thread in self._threads:
            if thread.ident is not None:  # started
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
