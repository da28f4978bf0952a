"""One sync per home at a time, whoever asks: a real Dagster webserver and daemon, with the refresh
schedule set to every minute, the reconnect sensor, and two launches by hand (as from the UI), all
requested within a few seconds of each other, against a Home Assistant slow enough (get_states
takes 2 s) that unserialised runs would overlap. The extra requests wait in the queue; the runs'
start and end times (read over GraphQL) never overlap."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from ..fake_ha import FakeHomeAssistant
from ..helpers import TOKEN, free_port, graphql, launched, sync_runs, wait_for

pytestmark = pytest.mark.e2e

SLOW_SECONDS = 2.0
LOCATION = {"repositoryLocationName": "homeiq_pipeline", "repositoryName": "__repository__"}
TERMINAL = ("SUCCESS", "FAILURE", "CANCELED")
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) { __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } }
}
"""


class SlowHomeAssistant(FakeHomeAssistant):
    """The protocol server, with a get_states that takes SLOW_SECONDS (like a large home)."""

    def _answer(self, command: str, *args: Any) -> dict[str, Any]:
        if command == "get_states":
            time.sleep(SLOW_SECONDS)
        return super()._answer(command, *args)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("concurrency")
    ha = SlowHomeAssistant(token=TOKEN, port=free_port())  # not started: the sensor sees it down
    try:
        with launched(tmp, ha.url, TOKEN, extra_env={"HA_REFRESH_CRON": "* * * * *"}) as (url, log):
            yield SimpleNamespace(url=url, log=log, ha=ha)
    finally:
        ha.stop()


def launch_by_hand(url: str) -> str:
    params = {
        "selector": {**LOCATION, "jobName": "sync_home_assistant"},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "home"}]},
        "runConfigData": {},
    }
    answer = graphql(url, LAUNCH, params=params)["launchRun"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    return answer["run"]["runId"]


def test_schedule_sensor_and_manual_launches_never_run_two_syncs_of_a_home_at_once(deployment: SimpleNamespace) -> None:
    url = deployment.url
    # Line the requests up on a minute boundary, when the every-minute schedule fires: Home
    # Assistant comes up just before it (the sensor's next tick asks for a "reconnected" sync), and
    # two syncs are launched by hand at the same moment.
    now = time.time()
    boundary = (now // 60 + 1) * 60
    if boundary - now < 8:  # leave the daemon time to be ready
        boundary += 60
    time.sleep(max(0.0, boundary - 1.5 - time.time()))
    deployment.ha.start()
    manual = {launch_by_hand(url), launch_by_hand(url)}

    seen_queued_while_running = False

    def all_done() -> list[dict[str, Any]] | None:
        nonlocal seen_queued_while_running
        runs = [run for run in sync_runs(url) if run["tags"].get("dagster/partition") == "home"]
        statuses = {run["status"] for run in runs}
        if "STARTED" in statuses and "QUEUED" in statuses:
            seen_queued_while_running = True
        triggers = {run["tags"].get("homeiq/trigger") for run in runs}
        if {"schedule", "reconnect"} <= triggers and manual <= {run["runId"] for run in runs} and statuses <= set(TERMINAL):
            return runs
        return None

    runs = wait_for("the schedule's, the sensor's and both manual syncs to finish", all_done, timeout=240, every=0.3)
    runs = [run for run in runs if run["startTime"]]  # launched runs; a later schedule tick may still be queued
    assert all(run["status"] == "SUCCESS" for run in runs), [(r["runId"], r["status"]) for r in runs]
    assert all(run["tags"].get("homeiq/sync", "home") == "home" for run in runs)

    # Never two at once: sorted by start, each run starts after the one before it ended.
    ordered = sorted(runs, key=lambda run: run["startTime"])
    for before, after in itertools.pairwise(ordered):
        assert after["startTime"] >= before["endTime"], (before, after)
    # Not vacuous: runs were requested while another ran, and waited in the queue.
    assert seen_queued_while_running
    waited = [(b, a) for b, a in itertools.pairwise(ordered) if a["creationTime"] < b["endTime"]]
    assert len(waited) >= 2, ordered
    spread = max(r["creationTime"] for r in runs[:4]) - min(r["creationTime"] for r in runs[:4])
    first = datetime.fromtimestamp(min(r["creationTime"] for r in runs), UTC).isoformat(timespec="seconds")
    print(f"\n[e2e] {len(runs)} syncs of one home requested from {first} (first four within {spread:.1f} s); "
          f"{len(waited)} waited in the queue; none overlapped")
