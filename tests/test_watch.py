"""Live mode against the fast tier's HA server: its subscriptions push HA's registry events, and
the watcher turns each change into one sync that lands in the mirror (synced directly here, no
Dagster, so no sensor and no schedule can be what brought the change)."""

from __future__ import annotations

import copy
import functools
import http.server
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from homeiq_pipeline import homeassistant as ha
from homeiq_pipeline import storage
from homeiq_pipeline.storage.schema import areas, config_entries, devices, entities
from homeiq_pipeline.watch import (
    SUBSCRIPTIONS,
    DagsterRuns,
    DagsterUnavailable,
    LaunchRefused,
    Watcher,
    WatchSettings,
    describe,
)
from homeiq_pipeline.watch.direct import DirectSyncs
from homeiq_pipeline.watch.loop import Refused, TryLater

from . import helpers
from .fake_ha import FakeHomeAssistant
from .helpers import TOKEN
from .mirror_checks import all_rows, assert_mirror_equals_ha, live_rows

DEBOUNCE = 0.3  # seconds; the default (2 s) is used by the burst test
wait_for = functools.partial(helpers.wait_for, every=0.05)  # in-process servers answer at once


class RecordingSyncs:
    """Syncs directly, like `watch --direct`, and records each request's tags."""

    def __init__(self, server: FakeHomeAssistant, db_url: str) -> None:
        self.direct = DirectSyncs(lambda: ha.HomeAssistantClient(server.url, TOKEN), db_url)
        self.requests: list[dict[str, str]] = []
        self.waiting: str | None = None  # a run id to report as waiting in the queue
        self.failure: Exception | None = None

    def waiting_sync(self, home: str) -> str | None:
        return self.waiting

    def launch_sync(self, home: str, tags: dict[str, str]) -> str:
        if self.failure is not None:
            raise self.failure
        run_id = self.direct.launch_sync(home, tags)
        self.requests.append(tags)  # once its sync is done
        return run_id

    def reasons(self) -> list[str]:
        return [tags["homeiq/reason"] for tags in self.requests]


@contextmanager
def watching(server: FakeHomeAssistant, syncs: RecordingSyncs, **settings: Any) -> Iterator[Watcher]:
    options = {"debounce": DEBOUNCE, **settings}
    watcher = Watcher(lambda: ha.HomeAssistantClient(server.url, TOKEN, timeout=5), syncs, WatchSettings(**options))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            watcher.run()
        except BaseException as exc:  # noqa: BLE001  (handed to the test, which re-raises it)
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield watcher
    finally:
        watcher.stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the watcher did not stop"
    if errors:
        raise errors[0]


# The watcher does not care which database the sync writes to: SQLite only (the sync itself is
# tested against PostgreSQL too).
@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mirror.db'}"


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = storage.open_database(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def syncs(fake_ha: FakeHomeAssistant, db_url: str) -> RecordingSyncs:
    return RecordingSyncs(fake_ha, db_url)


def synced(syncs: RecordingSyncs, count: int) -> Callable[[], bool]:
    return lambda: len(syncs.requests) >= count


# -- the client's subscriptions ---------------------------------------------------------------


def test_subscriptions_deliver_registry_events_in_home_assistants_shape(fake_ha: FakeHomeAssistant) -> None:
    device = fake_ha.results["config/device_registry/list"][0]
    with ha.HomeAssistantClient(fake_ha.url, TOKEN) as client:
        ids = {client.subscribe(command, **payload): payload.get("event_type", command) for command, payload in SUBSCRIPTIONS}
        initial = client.receive_event(5)  # config_entries/subscribe sends the current entries first
        assert initial is not None and ids[initial["id"]] == "config_entries/subscribe"
        assert [item["type"] for item in initial["event"]] == [None] * len(fake_ha.results["config_entries/get"])
        assert describe("config_entries/subscribe", initial) == []  # the current list is not a change

        fake_ha.change("config/device_registry/update", device_id=device["id"], name_by_user="Renamed")
        event = client.receive_event(5)
        assert event is not None and ids[event["id"]] == "device_registry_updated"
        assert event["event"]["event_type"] == "device_registry_updated"
        assert event["event"]["data"] == {"action": "update", "device_id": device["id"], "changes": {"name_by_user": None}}
        assert [str(c) for c in describe("device_registry_updated", event)] == ["device_registry update"]

        # Commands still work between events, and events arriving meanwhile are kept.
        fake_ha.change("config/area_registry/create", name="Attic")
        assert client.command("get_config")["state"] == "RUNNING"
        event = client.receive_event(5)
        assert event is not None and event["event"]["data"] == {"action": "create", "area_id": "attic"}
        assert client.receive_event(0.2) is None  # silence is not an error, and keeps the connection
        assert client.ping() >= 0


class NoSyncs(RecordingSyncs):
    """Records requests without syncing: a sync in the watcher's thread would miss 0.2 s pings."""

    def launch_sync(self, home: str, tags: dict[str, str]) -> str:
        self.requests.append(tags)
        return f"run-{len(self.requests)}"


def test_a_subscriber_answers_home_assistants_websocket_pings_and_stays_connected(db_url: str) -> None:
    # A pong may be late on a busy machine: only the pings are frequent, not the patience.
    with FakeHomeAssistant(token=TOKEN, ping_interval=0.2, ping_timeout=5) as server:
        syncs = NoSyncs(server, db_url)
        with watching(server, syncs, keepalive=0.5) as watcher:
            wait_for("the first sync", synced(syncs, 1))
            # Many of HA's pings (every 0.2 s, answered within 0.2 s) and of our own `ping` commands.
            wait_for("several of our own pings", lambda: server.commands_seen.count("ping") >= 3)
            assert watcher.connections == 1  # never dropped for a missed pong
            assert syncs.reasons() == ["connected"]


# -- each change reaches the mirror through the watcher --------------------------------------


def test_each_kind_of_change_reaches_the_mirror_through_the_watcher(
    fake_ha: FakeHomeAssistant, syncs: RecordingSyncs, engine: sa.Engine
) -> None:
    device = fake_ha.results["config/device_registry/list"][3]
    kitchen_sink = next(e for e in fake_ha.results["config_entries/get"] if e["domain"] == "kitchen_sink")
    # 1 s of quiet: disabling an entry sends 28 events, which a loaded machine may space out.
    with watching(fake_ha, syncs, debounce=1.0):
        wait_for("the first sync", synced(syncs, 1))
        assert_mirror_equals_ha(engine, fake_ha.results)

        fake_ha.change("config/device_registry/update", device_id=device["id"], name_by_user="Renamed by the test")
        wait_for("the rename", lambda: live_rows(engine, devices)[device["id"]]["name_by_user"] == "Renamed by the test")

        helper = fake_ha.change("input_boolean/create", name="Watched switch")
        entity_id = f"input_boolean.{helper['id']}"
        wait_for("the new entity", lambda: any(r["entity_id"] == entity_id for r in live_rows(engine, entities).values()))

        fake_ha.change("config/entity_registry/remove", entity_id=entity_id)
        wait_for("the removed entity", lambda: [r["removed_at"] is not None for r in all_rows(engine, entities)
                                                if r["entity_id"] == entity_id] == [True])

        area = fake_ha.change("config/area_registry/create", name="Watched attic")
        wait_for("the new area", lambda: area["area_id"] in live_rows(engine, areas))

        fake_ha.change("config_entries/disable", entry_id=kitchen_sink["entry_id"], disabled_by="user")
        wait_for("the disabled entry",
                 lambda: live_rows(engine, config_entries)[kitchen_sink["entry_id"]]["disabled_by"] == "user")
        with fake_ha.lock:
            expected = copy.deepcopy(fake_ha.results)
        assert_mirror_equals_ha(engine, expected)  # field by field, and nothing else live
    reasons = syncs.reasons()
    assert reasons[:5] == ["connected", "device_registry update", "entity_registry create",
                           "entity_registry remove", "area_registry create"]
    # Disabling an entry: its own event, and HA's updates of each entity it disabled, in one sync.
    assert reasons[5].startswith("config_entries updated, entity_registry update x")
    assert len(reasons) == 6
    assert {tags["homeiq/trigger"] for tags in syncs.requests} == {"watch"}


def test_a_burst_of_50_changes_in_one_second_yields_at_most_two_syncs(
    fake_ha: FakeHomeAssistant, syncs: RecordingSyncs, engine: sa.Engine
) -> None:
    device = fake_ha.results["config/device_registry/list"][0]

    def announced() -> int:
        """How many of the burst's announcements the syncs after the first one carry in their reasons."""
        counts = [re.fullmatch(r"device_registry update(?: x(\d+))?", tags["homeiq/reason"])
                  for tags in syncs.requests[1:]]
        assert all(counts), syncs.reasons()
        return sum(int(m.group(1) or 1) for m in counts if m)

    with watching(fake_ha, syncs, debounce=2.0) as watcher:  # the default debounce
        wait_for("the first sync", synced(syncs, 1))
        for n in range(50):
            fake_ha.change("config/device_registry/update", device_id=device["id"], name_by_user=f"Burst {n}")
            time.sleep(0.02)
        wait_for("the last name", lambda: live_rows(engine, devices)[device["id"]]["name_by_user"] == "Burst 49")
        # Every announcement synced and nothing owed: no event is left that could ask for another sync.
        wait_for("all 50 announcements synced", lambda: announced() >= 50 and not watcher.owes, timeout=60)
    assert 1 <= len(syncs.requests[1:]) <= 2
    assert announced() == 50


def test_changes_while_a_sync_waits_in_the_queue_request_no_other(
    fake_ha: FakeHomeAssistant, syncs: RecordingSyncs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "homeiq_pipeline.watch")
    with watching(fake_ha, syncs):
        wait_for("the first sync", synced(syncs, 1))
        syncs.waiting = "run-waiting-in-the-queue"
        fake_ha.change("config/area_registry/create", name="Queued area")
        wait_for("the decision", lambda: "run-waiting-in-the-queue of home 'home' has not started yet" in caplog.text)
        assert len(syncs.requests) == 1
        syncs.waiting = None
        fake_ha.change("config/area_registry/create", name="Another area")
        wait_for("the next sync", synced(syncs, 2))
    assert syncs.reasons() == ["connected", "area_registry create"]


def test_a_sync_that_cannot_be_requested_is_asked_again_and_a_refused_one_dropped(
    fake_ha: FakeHomeAssistant, syncs: RecordingSyncs, engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "homeiq_pipeline.watch")
    syncs.failure = TryLater("the Dagster webserver at http://127.0.0.1:1 is unreachable")
    with watching(fake_ha, syncs, retry_request=0.2):
        wait_for("a retry", lambda: caplog.text.count("asking again in 0.2 s") >= 2)
        fake_ha.change("config/area_registry/create", name="Made while Dagster was down")
        syncs.failure = None
        wait_for("the sync", synced(syncs, 1))
        syncs.failure = Refused("no job sync_home_assistant")
        fake_ha.change("config/area_registry/create", name="Refused")
        wait_for("the refusal", lambda: "sync request refused, dropping it" in caplog.text)
        syncs.failure = None
    # Nothing was lost while Dagster was unreachable: the one sync carried both reasons.
    assert syncs.reasons() == ["connected, area_registry create"]
    assert "made_while_dagster_was_down" in live_rows(engine, areas)


# -- reconnects --------------------------------------------------------------------------------


def restart(server: FakeHomeAssistant, state: str = "RUNNING") -> FakeHomeAssistant:
    """The same HA (same port, same data) stopped and started again."""
    results, port = copy.deepcopy(server.results), server.port
    server.stop()
    again = FakeHomeAssistant(results, token=TOKEN, port=port)
    again.state = state
    return again.start()


def test_a_restart_of_home_assistant_while_watching_ends_in_one_sync_once_it_runs(db_url: str, engine: sa.Engine) -> None:
    server = FakeHomeAssistant(token=TOKEN).start()
    syncs = RecordingSyncs(server, db_url)
    try:
        with watching(server, syncs, backoff_first=0.1, backoff_max=0.5, state_poll=0.1) as watcher:
            wait_for("the first sync", synced(syncs, 1))
            device = server.results["config/device_registry/list"][1]
            server.results["config/device_registry/list"][1] = {**device, "name_by_user": "Renamed while down"}
            server = restart(server, state="STARTING")
            syncs.direct.connect = lambda: ha.HomeAssistantClient(server.url, TOKEN)
            wait_for("the watcher back on the new server", lambda: server.connections >= 1)
            # Each look at HA's state is a `get_config`: after several, still STARTING, nothing was synced.
            wait_for("three looks at the state after connecting", lambda: server.commands_seen.count("get_config") >= 4)
            assert len(syncs.requests) == 1 and watcher.owes
            server.state = "RUNNING"
            wait_for("the reconnect sync", synced(syncs, 2))
            # A change made now is announced after all the watcher saw so far: had that left another
            # sync owed, it would be in this change's sync, or a sync of its own before it.
            server.change("config/area_registry/create", name="After the restart")
            wait_for("the change's sync", synced(syncs, 3))
        assert syncs.reasons() == ["connected", "reconnected", "area_registry create"]
        assert live_rows(engine, devices)[device["id"]]["name_by_user"] == "Renamed while down"
    finally:
        server.stop()


def test_changes_made_while_the_watcher_is_away_arrive_with_its_next_connection(
    fake_ha: FakeHomeAssistant, syncs: RecordingSyncs, engine: sa.Engine
) -> None:
    with watching(fake_ha, syncs):
        wait_for("the first sync", synced(syncs, 1))
    fake_ha.change("config/area_registry/create", name="Made while nobody watched")
    with watching(fake_ha, syncs):
        wait_for("the catch-up sync", synced(syncs, 2))
    assert syncs.reasons() == ["connected", "connected"]
    assert "made_while_nobody_watched" in live_rows(engine, areas)


def test_reconnect_attempts_back_off_exponentially_up_to_the_cap(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "homeiq_pipeline.watch")
    server = FakeHomeAssistant(token=TOKEN).start()
    url = server.url
    server.stop()  # nothing listens there now
    syncs = RecordingSyncs(server, f"sqlite:///{tmp_path / 'unused.db'}")
    watcher = Watcher(lambda: ha.HomeAssistantClient(url, TOKEN, timeout=2), syncs,
                      WatchSettings(backoff_first=0.05, backoff_max=0.4), rng=random.Random(1))
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    wait_for("eight attempts", lambda: caplog.text.count("connecting again in") >= 8)
    watcher.stop.set()
    thread.join(timeout=10)
    delays = [float(line.rpartition("connecting again in ")[2].split()[0])
              for line in caplog.text.splitlines() if "connecting again in" in line]
    # Jitter takes 0-50 % off each step (0.05, 0.1, 0.2, 0.4, 0.4, ...), whatever the draw:
    assert max(delays) <= 0.4  # capped
    assert max(delays[:2]) <= 0.1 and min(delays[4:8]) >= 0.2  # and growing
    assert "watcher stopped" in caplog.text
    assert syncs.requests == []


def test_the_backoff_jitter_stays_within_half_of_each_step() -> None:
    watcher = Watcher(lambda: ha.HomeAssistantClient("http://127.0.0.1:1", TOKEN), NoSyncs.__new__(NoSyncs),
                      WatchSettings(backoff_first=0.5, backoff_max=10.0), rng=random.Random(7))
    for failures, step in [(1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (6, 10.0), (30, 10.0)]:
        delays = [watcher._backoff(failures) for _ in range(200)]
        assert step / 2 <= min(delays) and max(delays) <= step
        assert max(delays) - min(delays) > step / 4  # spread out, so many watchers do not knock in step


# -- failures that are not Home Assistant's ------------------------------------------------------


class Broken(RecordingSyncs):
    """Fails the first `times` requests with an error nobody foresaw (a bug, say)."""

    def __init__(self, server: FakeHomeAssistant, db_url: str, times: int) -> None:
        super().__init__(server, db_url)
        self.times = times

    def waiting_sync(self, home: str) -> str | None:
        if self.times:
            self.times -= 1
            raise RuntimeError("an unforeseen bug")
        return None


def test_an_unexpected_error_is_logged_and_the_watcher_connects_again(
    fake_ha: FakeHomeAssistant, db_url: str, engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "homeiq_pipeline.watch")
    syncs = Broken(fake_ha, db_url, times=2)
    with watching(fake_ha, syncs, backoff_first=0.05, backoff_max=0.1) as watcher:
        wait_for("the sync after the failures", synced(syncs, 1))
    failures = [r.getMessage() for r in caplog.records if "watcher failed unexpectedly" in r.getMessage()]
    assert len(failures) == 2 and "RuntimeError: an unforeseen bug" in failures[0]
    assert all("\n" not in message and TOKEN not in message for message in failures)  # one line, no token
    assert watcher.connections == 3  # connected again after each
    assert syncs.reasons() == ["connected, reconnected, reconnected"]  # the owed sync was kept, not dropped
    assert_mirror_equals_ha(engine, fake_ha.results)


def test_a_database_error_in_direct_mode_is_retried_not_dropped(fake_ha: FakeHomeAssistant, tmp_path: Path) -> None:
    direct = DirectSyncs(lambda: ha.HomeAssistantClient(fake_ha.url, TOKEN), f"sqlite:///{tmp_path}")  # a folder
    with pytest.raises(TryLater, match="database error at sqlite:///"):
        direct.launch_sync("home", {})


# -- Dagster's answers -------------------------------------------------------------------------------


class FakeGraphQL(http.server.ThreadingHTTPServer):
    """Answers each POST with the next canned (status, raw body) and records the requests: for
    answers a healthy Dagster never gives (the real one is in tests/e2e/test_watch_dagster.py)."""

    def __init__(self, answers: list[tuple[int, bytes] | dict[str, Any]]) -> None:
        self.answers = answers
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                server.requests.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                answer = server.answers.pop(0)
                status, body = answer if isinstance(answer, tuple) else (200, json.dumps(answer).encode())
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body) + (100 if body == b"{trunc" else 0)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def graphql_server(*answers: tuple[int, bytes] | dict[str, Any]) -> Iterator[FakeGraphQL]:
    server = FakeGraphQL(list(answers))
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


RUNS_NONE = {"data": {"runsOrError": {"__typename": "Runs", "results": []}}}
PARTITIONS = {"data": {"pipelineOrError": {"__typename": "Pipeline", "partitionKeysOrError": {"partitionKeys": ["home"]}}}}


@pytest.mark.parametrize("answer", [
    (200, b"{trunc"),  # the connection ends inside the body (http.client.IncompleteRead)
    (200, b"[]"),
    {"data": None},
    {"data": {"runsOrError": None}},
    {"data": {"runsOrError": {"results": []}}},
    {"data": {"runsOrError": {"__typename": "Runs", "results": [{"status": "QUEUED"}]}}},
], ids=["truncated", "a-list", "no-data", "null-answer", "no-typename", "no-run-id"])
def test_an_answer_of_another_shape_is_asked_again_later(answer: tuple[int, bytes] | dict[str, Any]) -> None:
    with graphql_server(answer) as server, pytest.raises(DagsterUnavailable, match="the Dagster webserver at http"):
        DagsterRuns(server.url, timeout=5).waiting_sync("home")


def test_a_run_launched_from_the_ui_counts_as_waiting() -> None:
    # A run launched by hand in the UI carries dagster/partition but not homeiq/sync.
    ui_run = {"data": {"runsOrError": {"__typename": "Runs", "results": [{"runId": "from-the-ui", "status": "QUEUED"}]}}}
    with graphql_server(RUNS_NONE, ui_run) as server:
        assert DagsterRuns(server.url).waiting_sync("cabin") == "from-the-ui"
    assert [r["variables"]["filter"]["tags"] for r in server.requests] == [
        [{"key": "homeiq/sync", "value": "cabin"}], [{"key": "dagster/partition", "value": "cabin"}]]


def test_an_error_answer_about_partitions_is_not_remembered() -> None:
    refused = {"errors": [{"message": "a passing error"}]}
    with graphql_server(refused, PARTITIONS) as server:
        runs = DagsterRuns(server.url)
        assert runs.partitions() == []
        assert runs.partitions() == ["home"]  # asked again, not the error's [] for a minute
        assert len(server.requests) == 2


@pytest.mark.parametrize("typename", ["PythonError", "PipelineNotFoundError"])
def test_a_code_location_still_loading_means_asking_again_later(typename: str) -> None:
    loading = {"__typename": typename, "message": "the code location is loading"}
    launch_loading = {"data": {"launchRun": loading}}
    with graphql_server({"data": {"pipelineOrError": loading}}, PARTITIONS, launch_loading,
                        {"data": {"runsOrError": loading}}) as server:
        runs = DagsterRuns(server.url)
        with pytest.raises(DagsterUnavailable, match="the code location is loading"):
            runs.launch_sync("home", {})  # the partitions
        with pytest.raises(DagsterUnavailable, match="the code location is loading"):
            runs.launch_sync("home", {})  # the launch itself
        with pytest.raises(DagsterUnavailable, match="the code location is loading"):
            runs.waiting_sync("home")
    with graphql_server({"data": {"launchRun": {"__typename": "RunConfigValidationInvalid",
                                                "errors": [{"message": "bad config"}]}}}) as server:
        runs = DagsterRuns(server.url, partitions_ttl=60)
        runs._partitions = (time.monotonic(), ["home"])
        with pytest.raises(LaunchRefused, match="bad config"):  # retrying cannot fix this one
            runs.launch_sync("home", {})
