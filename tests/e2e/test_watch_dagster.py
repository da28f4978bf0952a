"""Live mode end to end: the watcher requests syncs from a real Dagster webserver and daemon
(`homeiq-pipeline run`) whose reconnect sensor and refresh schedule are switched OFF, so only
the watcher can bring a change from the fast tier's HA server into the mirror."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from homeiq_pipeline import homeassistant as ha
from homeiq_pipeline import storage
from homeiq_pipeline.storage.schema import areas, config_entries, devices, entities
from homeiq_pipeline.watch import DagsterRuns, LaunchRefused, Watcher, WatchSettings

from ..fake_ha import FakeHomeAssistant
from ..helpers import (
    HOME,
    SELECTOR,
    TOKEN,
    LiveDeployment,
    free_port,
    graphql,
    launched,
    switch_off_sensor_and_schedule,
    wait_for,
)
from ..mirror_checks import all_rows, live_rows

pytestmark = pytest.mark.e2e

DEBOUNCE = 1.0  # seconds


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDeployment]:
    tmp: Path = tmp_path_factory.mktemp("live")
    server = FakeHomeAssistant(token=TOKEN, port=free_port()).start()
    try:
        with launched(tmp, server.url, TOKEN) as (url, _log):
            switch_off_sensor_and_schedule(url)
            since = time.time()
            watcher = Watcher(lambda: ha.HomeAssistantClient(server.url, TOKEN), DagsterRuns(url),
                              WatchSettings(home=HOME, debounce=DEBOUNCE))
            thread = threading.Thread(target=watcher.run, daemon=True)
            thread.start()
            engine = storage.open_database(f"sqlite:///{tmp / 'mirror.db'}")
            deployment = LiveDeployment(url, server, engine, watcher, since)
            try:
                yield deployment
            finally:
                watcher.stop.set()
                thread.join(timeout=30)
                engine.dispose()
                server = deployment.ha  # a test may have restarted it
    finally:
        server.stop()


def test_the_watchers_connection_sync_runs_in_dagster_for_the_home_partition(live: LiveDeployment) -> None:
    [run] = live.finished_runs("the connection sync", at_least=1)
    assert run["tags"]["homeiq/trigger"] == "watch"
    assert run["tags"]["homeiq/reason"] == "connected"
    assert run["tags"]["dagster/partition"] == HOME and run["tags"]["homeiq/sync"] == HOME
    assert run["runId"] in live.watcher.requested


def test_each_kind_of_change_reaches_the_mirror_through_the_watcher_and_dagster(live: LiveDeployment) -> None:
    # All five at once (the fast tier makes them one by one): one run of Dagster's brings them all.
    before = len(live.finished_runs("the connection sync", at_least=1))
    device = live.ha.results["config/device_registry/list"][5]
    entry = next(e for e in live.ha.results["config_entries/get"] if e["domain"] == "sun")
    doomed = next(e for e in live.ha.results["config/entity_registry/list"] if e["platform"] == "demo")

    live.ha.change("config/device_registry/update", device_id=device["id"], name_by_user="Renamed live")
    helper = live.ha.change("input_boolean/create", name="Live switch")
    live.ha.change("config/entity_registry/remove", entity_id=doomed["entity_id"])
    area = live.ha.change("config/area_registry/create", name="Live attic")
    live.ha.change("config_entries/disable", entry_id=entry["entry_id"], disabled_by="user")

    def all_five_in_the_mirror() -> bool:
        return (
            live_rows(live.engine, devices)[device["id"]]["name_by_user"] == "Renamed live"
            and f"input_boolean.{helper['id']}" in {r["entity_id"] for r in live_rows(live.engine, entities).values()}
            and [r["removed_at"] is not None for r in all_rows(live.engine, entities) if r["id"] == doomed["id"]] == [True]
            and area["area_id"] in live_rows(live.engine, areas)
            and live_rows(live.engine, config_entries)[entry["entry_id"]]["disabled_by"] == "user"
        )

    # Counted by what they announce, not by position: a reconnect of the watcher (a slow CI
    # machine can miss a ping) adds a "reconnected" run of its own at any moment.
    live.finished_runs("the run to finish", at_least=before + 1)
    wait_for("all five changes in the mirror", all_five_in_the_mirror, timeout=120)
    runs = live.finished_runs("the runs to finish")[before:]
    announcing = [r for r in runs if r["tags"].get("homeiq/trigger") == "watch"
                  and "device_registry update" in r["tags"]["homeiq/reason"]]
    [run] = announcing  # one run brought all five
    announced = {re.sub(r" x\d+$", "", part) for part in run["tags"]["homeiq/reason"].split(", ")}
    assert {"device_registry update", "entity_registry create", "entity_registry remove", "area_registry create",
            "config_entries updated"} <= announced
    assert (run["tags"]["dagster/partition"], run["tags"]["homeiq/sync"]) == (HOME, HOME)


def test_a_waiting_sync_of_the_home_is_found_in_dagsters_queue(live: LiveDeployment) -> None:
    live.finished_runs("earlier runs to finish")
    runs = DagsterRuns(live.url)
    assert runs.waiting_sync(HOME) is None
    # Two at once: the run queue lets one per home proceed, so the other waits.
    launched_ids = {runs.launch_sync(HOME, {"homeiq/trigger": "test", "homeiq/reason": "queue"}) for _ in range(2)}
    assert runs.waiting_sync(HOME) in launched_ids
    assert runs.waiting_sync("another-home") is None
    with pytest.raises(LaunchRefused, match=r"'another-home' is not a home of sync_home_assistant \(its partitions: home\)"):
        runs.launch_sync("another-home", {"homeiq/trigger": "test"})
    wait_for("both to finish", lambda: live.settled(), timeout=180)  # (they count as the watcher's until:)
    assert runs.waiting_sync(HOME) is None
    # Launched by hand in the UI: the run carries dagster/partition, not homeiq/sync.
    from_the_ui = {launch_as_the_ui_does(live.url) for _ in range(2)}
    assert runs.waiting_sync(HOME) in from_the_ui
    wait_for("both to finish", lambda: live.settled(), timeout=180)
    live.since = time.time()  # these were not the watcher's


LAUNCH_AS_THE_UI = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) { __typename ... on LaunchRunSuccess { run { runId } } ... on Error { message } }
}
"""


def launch_as_the_ui_does(url: str) -> str:
    params = {"selector": {**SELECTOR, "jobName": "sync_home_assistant"}, "runConfigData": {},
              "executionMetadata": {"tags": [{"key": "dagster/partition", "value": HOME}]}}
    answer = graphql(url, LAUNCH_AS_THE_UI, params=params)["launchRun"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    return str(answer["run"]["runId"])


def test_a_burst_of_50_changes_during_a_running_sync_leads_to_one_follow_up_run(live: LiveDeployment) -> None:
    before = len(live.finished_runs("earlier runs to finish"))
    device = live.ha.results["config/device_registry/list"][6]
    live.ha.change("config/device_registry/update", device_id=device["id"], name_by_user="Before the burst")
    # Started: it reads HA now or has already (a STARTING run has not, and would see the burst).
    wait_for("its sync to start", lambda: any(r["status"] in ("STARTED", "SUCCESS")
                                             for r in live.runs()[before:]), timeout=120)
    for n in range(50):
        live.ha.change("config/device_registry/update", device_id=device["id"], name_by_user=f"Burst {n}")
        time.sleep(0.02)
    wait_for("the last name in the mirror",
             lambda: live_rows(live.engine, devices)[device["id"]]["name_by_user"] == "Burst 49", timeout=180)
    # The burst came after the first run started, so a follow-up is always owed, and once the
    # watcher owes nothing more, no third run can come.
    runs = live.finished_runs("the follow-up run to finish", at_least=before + 2)[before:]
    assert len(runs) == 2, [run["tags"]["homeiq/reason"] for run in runs]  # the running sync and one follow-up


def test_a_restart_of_home_assistant_while_watching_ends_in_one_sync(
    live: LiveDeployment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "homeiq_pipeline.watch")
    before = len(live.finished_runs("earlier runs to finish"))
    port, results = live.ha.port, live.ha.results
    live.ha.stop()
    area_id = "made_during_the_restart"
    results["config/area_registry/list"].append({**results["config/area_registry/list"][0], "area_id": area_id,
                                                 "name": "Made during the restart"})
    # The watcher saw HA gone, and then failed to reach it: it backs off.
    wait_for("a reconnect attempt while HA is down", lambda: caplog.text.count("connecting again in") >= 2)
    live.ha = FakeHomeAssistant(results, token=TOKEN, port=port).start()  # HA back, same address
    wait_for("the area in the mirror", lambda: area_id in live_rows(live.engine, areas), timeout=180)
    # A change made now is announced after everything HA sent the watcher on reconnecting: had that
    # left another sync owed, it would be in this change's run, or a run of its own before it.
    device = live.ha.results["config/device_registry/list"][7]
    live.ha.change("config/device_registry/update", device_id=device["id"], name_by_user="After the restart")
    runs = live.finished_runs("the later change's run to finish", at_least=before + 2)[before:]
    assert [run["tags"]["homeiq/reason"] for run in runs] == ["reconnected", "device_registry update"]
