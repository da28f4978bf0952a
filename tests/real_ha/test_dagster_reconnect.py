"""The Dagster deployment (webserver + daemon) against a real Home Assistant: the sensor syncs on
first contact, and once per real restart of HA; each run succeeds and carries HA's numbers."""

from __future__ import annotations

import time

import pytest

from ..helpers import SENSOR_INTERVAL, Deployment, finished, launched, reconnect_runs, skipped_since, wait_for
from .helpers import RealHomeAssistant, command, ensure_running

pytestmark = pytest.mark.real_ha


def test_a_real_restart_of_home_assistant_leads_to_exactly_one_sync(
    ha: RealHomeAssistant, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    with launched(tmp_path, ha.url, ha.token) as (url, log):
        deployment = Deployment(url, ha, log)
        first = wait_for("the first-contact sync", lambda: finished(deployment, "first contact"), timeout=120)
        devices = deployment.latest_materialization("ha_devices")
        assert devices["runId"] == first["runId"]
        assert devices["metadata"]["dagster/row_count"] == len(command(ha, "config/device_registry/list"))
        entries = deployment.latest_materialization("ha_config_entries")["metadata"]["dagster/row_count"]
        assert entries == len(command(ha, "config_entries/get")) > 0
        try:
            ha.stop()
            stopped_at = time.time()
            wait_for("the sensor to see Home Assistant down",
                     lambda: skipped_since(deployment, stopped_at, "unreachable") >= 1, timeout=60)
            ha.start()  # back to RUNNING (same port, same token)
            back_at = time.monotonic()
            run = wait_for("the reconnect sync",
                           lambda: finished(deployment, "reconnected") or finished(deployment, "started (STARTING -> RUNNING)"),
                           timeout=120)
            seconds = time.monotonic() - back_at
        finally:
            ensure_running(ha)
        with capsys.disabled():
            print(f"\n[real HA] Home Assistant RUNNING again -> sync run finished in {seconds:.1f} s "
                  f"(sensor interval {SENSOR_INTERVAL} s)")
        quiet_since = time.time()
        wait_for("two more sensor ticks", lambda: skipped_since(deployment, quiet_since, "unchanged") >= 2, timeout=60)
        assert len(reconnect_runs(deployment)) == 2, reconnect_runs(deployment)
        assert run["status"] == "SUCCESS"
