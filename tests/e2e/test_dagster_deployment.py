"""End to end: a real Dagster webserver and daemon sync a Home Assistant when it first answers and
each time it comes back, exactly once per reconnect, and the runs carry their metadata."""

from __future__ import annotations

import pytest

import time

from .conftest import SENSOR_INTERVAL, Deployment, wait_for

pytestmark = pytest.mark.e2e

SENSOR_TICKS_QUERY = """
query Ticks {
  sensorOrError(sensorSelector: {repositoryName: "__repository__", repositoryLocationName: "homeiq_pipeline",
                                 sensorName: "home_assistant_reconnect"}) {
    ... on Sensor { sensorState { ticks(limit: 20) { timestamp status skipReason } } }
  }
}
"""


def reconnect_runs(deployment: Deployment) -> list[dict]:
    return [run for run in deployment.sync_runs() if run["tags"].get("homeiq/trigger") == "reconnect"]


def finished(deployment: Deployment, reason: str) -> dict | None:
    runs = [run for run in reconnect_runs(deployment) if run["tags"].get("homeiq/reason") == reason]
    assert all(run["status"] in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "SUCCESS") for run in runs), runs
    return next((run for run in reversed(runs) if run["status"] == "SUCCESS"), None)


def skipped_since(deployment: Deployment, since: float, text: str) -> int:
    ticks = deployment.graphql(SENSOR_TICKS_QUERY)["sensorOrError"]["sensorState"]["ticks"]
    return sum(1 for tick in ticks if tick["timestamp"] > since and text in (tick["skipReason"] or ""))


def test_the_first_contact_syncs_and_the_run_carries_metadata(deployment: Deployment) -> None:
    run = wait_for("the first-contact sync", lambda: finished(deployment, "first contact"), timeout=120)
    assert len(reconnect_runs(deployment)) == 1
    devices = deployment.latest_materialization("ha_devices")
    assert devices["runId"] == run["runId"]
    expected = len(deployment.ha.results["config/device_registry/list"])
    assert devices["metadata"]["dagster/row_count"] == expected
    assert devices["metadata"]["added"] == expected
    assert devices["metadata"]["ha_version"] == deployment.ha.ha_version
    first_device = min(device["id"] for device in deployment.ha.results["config/device_registry/list"])
    assert first_device in devices["metadata"]["preview"]  # the Markdown preview lists the first rows


def test_each_reconnect_launches_exactly_one_sync_that_succeeds(deployment: Deployment, capsys) -> None:
    wait_for("the first-contact sync", lambda: finished(deployment, "first contact"), timeout=120)
    for round_number in (1, 2):
        before = len(reconnect_runs(deployment))
        port = deployment.ha.port
        deployment.ha.stop()
        stopped_at = time.time()
        wait_for("the sensor to see Home Assistant unreachable",
                 lambda: skipped_since(deployment, stopped_at, "unreachable") >= 1, timeout=60)
        deployment.ha = type(deployment.ha)(token=deployment.ha.token, port=port).start()
        back_at = time.monotonic()
        run = wait_for("the reconnect sync", lambda: finished(deployment, "reconnected") if len(reconnect_runs(deployment)) > before else None, timeout=120)
        seconds = time.monotonic() - back_at
        with capsys.disabled():
            print(f"\n[e2e] reconnect {round_number}: Home Assistant back -> sync run finished in {seconds:.1f} s "
                  f"(sensor interval {SENSOR_INTERVAL} s)")
        # A few more ticks see HA unchanged and ask for nothing more.
        quiet_since = time.time()
        wait_for("two more sensor ticks", lambda: skipped_since(deployment, quiet_since, "unchanged") >= 2, timeout=60)
        assert len(reconnect_runs(deployment)) == before + 1
        assert run["tags"]["homeiq/reason"] == "reconnected"
