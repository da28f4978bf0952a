"""End to end: a real Dagster webserver and daemon sync a Home Assistant when it first answers and
each time it comes back, exactly once per reconnect, and the runs carry their metadata."""

from __future__ import annotations

import pytest

import time

from ..helpers import SENSOR_INTERVAL, Deployment, finished, reconnect_runs, skipped_since, wait_for

pytestmark = pytest.mark.e2e

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
