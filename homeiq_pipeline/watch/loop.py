"""The watcher: one websocket to HA, its registry subscriptions, a debounce, and sync requests.

Every (re)connection owes one sync (changes made while nobody listened are caught up), sent once
HA is RUNNING. Announced changes are collected until HA has been quiet for `debounce` seconds,
then one sync is requested for all of them. Only a person can fix a rejected token or an
untrusted TLS certificate, so those stop the watcher at once (HA bans addresses after repeated
failed logins). Anything else unforeseen is logged and the watcher connects again, with backoff.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..homeassistant import HomeAssistantClient, HomeAssistantError
from ..names import REASON_TAG, TRIGGER_TAG
from .changes import SUBSCRIPTIONS, Change, PendingSync, describe

log = logging.getLogger("homeiq_pipeline.watch")

RUNNING = "RUNNING"


class TryLater(Exception):
    """The sync could not be requested now (Dagster or HA unreachable): keep it and ask again."""


class Refused(Exception):
    """The sync request was refused for a reason retrying will not fix: log it and drop it."""


class SyncRequester(Protocol):
    def waiting_sync(self, home: str) -> str | None: ...

    def launch_sync(self, home: str, tags: dict[str, str]) -> str: ...


@dataclass(frozen=True)
class WatchSettings:
    home: str = "home"
    debounce: float = 2.0  # seconds of quiet after the last change before syncing
    max_delay: float = 20.0  # ... but never wait longer than this after the first one
    backoff_first: float = 0.5  # seconds before the first reconnect attempt, doubling up to:
    backoff_max: float = 10.0  # HA restarts take 2-15 s: never wait much longer than that
    keepalive: float = 30.0  # send HA a `ping` after this long without an event
    state_poll: float = 1.0  # while HA starts, look at its state this often
    retry_request: float = 5.0  # ask again this long after Dagster could not be reached
    tick: float = 0.25  # longest wait between looks at the stop flag and the debounce


class Watcher:
    def __init__(
        self,
        connect: Callable[[], HomeAssistantClient],
        runs: SyncRequester,
        settings: WatchSettings,
        stop: threading.Event | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._connect = connect
        self._runs = runs
        self.settings = settings
        self.stop = stop or threading.Event()
        self._rng = rng or random.Random()
        self._pending: PendingSync | None = None
        self._retry_at = 0.0
        self.requested: list[str] = []  # run ids requested, for the caller's summary
        self.connections = 0  # sessions that got as far as subscribing

    def run(self) -> None:
        """Watch until `stop` is set. Raises the HomeAssistantError whose cause only a person can
        fix (a rejected token, an untrusted TLS certificate: `Cause.settings_must_change`)."""
        failures = 0
        while not self.stop.is_set():
            before = self.connections
            try:
                self._session("reconnected" if self.connections else "connected")
            except HomeAssistantError as exc:
                if exc.cause.settings_must_change:
                    log.error("%s: stopping the watcher, not retrying", exc)
                    raise
                failures = 0 if self.connections > before else failures + 1
                delay = self._backoff(failures)
                log.warning("lost Home Assistant (%s); connecting again in %.1f s", exc, delay)
                self.stop.wait(delay)
            except Exception as exc:
                failures += 1  # even after a good connection: a lasting bug must not hammer HA
                delay = self._backoff(failures)
                log.error(
                    "watcher failed unexpectedly (%s: %s); connecting again in %.1f s", type(exc).__name__, exc, delay
                )
                self.stop.wait(delay)
        if self._pending is not None:
            log.warning("stopping with changes not yet synced (%s); the next start syncs them", self._pending.reason())
        log.info("watcher stopped")

    @property
    def owes(self) -> bool:
        """A sync is owed: HA announced changes (or a connection began) and no run was requested yet."""
        return self._pending is not None

    def _backoff(self, failures: int) -> float:
        """Capped exponential backoff with jitter, so many watchers do not knock in step."""
        s = self.settings
        return min(s.backoff_max, s.backoff_first * 2 ** max(0, failures - 1)) * self._rng.uniform(0.5, 1.0)

    def _session(self, why: str) -> None:
        s = self.settings
        client = self._connect()
        with client:
            subscribed_to = {
                client.subscribe(command, **payload): payload.get("event_type", command)
                for command, payload in SUBSCRIPTIONS
            }
            state = str(client.command("get_config").get("state"))
            self.connections += 1
            log.info(
                "connected to Home Assistant %s at %s (%s): subscribed to %s; %s sync owed for home %r",
                client.ha_version,
                client.url,
                state,
                ", ".join(subscribed_to.values()),
                why,
                s.home,
            )
            self._owe(why)
            if state != RUNNING:
                log.info("Home Assistant is %s: the sync waits until it is RUNNING", state)
            quiet_since = next_state_look = time.monotonic()
            while not self.stop.is_set():
                now = time.monotonic()
                if state != RUNNING and now >= next_state_look:
                    state = str(client.command("get_config").get("state"))
                    next_state_look = now + s.state_poll
                    if state == RUNNING:
                        log.info("Home Assistant is RUNNING now")
                if (
                    state == RUNNING
                    and self._pending
                    and now >= self._retry_at
                    and self._pending.due(now, s.debounce, s.max_delay)
                ):
                    self._request_sync()
                if now - quiet_since >= s.keepalive:
                    client.ping()  # a dead connection shows here, not only when HA next speaks
                    quiet_since = now
                message = client.receive_event(s.tick)
                if message is None:
                    continue
                quiet_since = time.monotonic()
                changes = describe(subscribed_to.get(message["id"], ""), message)
                if changes:
                    self._owe(None, changes)
                    log.info(
                        "Home Assistant announced %s; syncing after %g s of quiet",
                        ", ".join(map(str, changes)),
                        s.debounce,
                    )

    def _owe(self, why: str | None, changes: list[Change] | None = None) -> None:
        now = time.monotonic()
        if self._pending is None:
            self._pending = PendingSync(since=now, last_change=now)
        if why:
            self._pending.why.append(why)
        self._pending.add(changes or [], now)

    def _request_sync(self) -> None:
        assert self._pending is not None
        home, reason = self.settings.home, self._pending.reason()
        try:
            waiting = self._runs.waiting_sync(home)
            if waiting:
                log.info(
                    "sync run %s of home %r has not started yet and will see these changes (%s): "
                    "not requesting another",
                    waiting,
                    home,
                    reason,
                )
            else:
                run_id = self._runs.launch_sync(home, {TRIGGER_TAG: "watch", REASON_TAG: reason})
                self.requested.append(run_id)
                log.info("requested sync run %s of home %r: %s", run_id, home, reason)
        except TryLater as exc:
            self._retry_at = time.monotonic() + self.settings.retry_request
            log.warning("could not request a sync now (%s); asking again in %g s", exc, self.settings.retry_request)
            return
        except Refused as exc:
            log.error("sync request refused, dropping it (%s): %s", reason, exc)
        self._pending = None
