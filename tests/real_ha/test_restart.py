"""A real HA stops and starts again under a configured client: while it is down or still
starting a sync fails by name and writes nothing; once it runs again the next sync succeeds.

The start-up windows are made long and certain by a tiny custom integration (slow_start.py)
that holds HA in NOT_RUNNING, then in STARTING, for a few seconds each: no race with HA's clock.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from homeiq_pipeline.homeassistant import CannotConnect, HomeAssistantClient, HomeAssistantStarting

from . import slow_start
from .helpers import (
    RealHomeAssistant,
    assert_mirror_equals_live_ha,
    assert_registries_unchanged,
    database_state,
    ensure_running,
    real_ha,
    sync_with,
    wait_for_core_state,
)

pytestmark = pytest.mark.real_ha

# Each window must outlast a poll, a database fingerprint, a refused sync and another fingerprint
# on a loaded 2-core machine while HA itself is busy starting; STARTING stays under HA's 15 s.
NOT_RUNNING_SECONDS = 8
STARTING_SECONDS = 10


def assert_sync_fails_and_writes_nothing(
    client: HomeAssistantClient, engine: sa.Engine, db_url: str, error: type[Exception]
) -> Exception:
    before = database_state(engine, db_url)
    with pytest.raises(error) as caught:
        sync_with(client, engine)
    assert database_state(engine, db_url) == before  # the files' bytes and every row
    return caught.value


def test_syncs_fail_without_writing_while_ha_is_down_or_starting_and_resume_when_it_runs(
    ha: RealHomeAssistant, engine: sa.Engine, db_url: str
) -> None:
    client = HomeAssistantClient(ha.url, ha.token, timeout=real_ha.WS_TIMEOUT)  # configured once
    before_stop, _ = sync_with(client, engine)
    hass_pid = ha.pid
    try:
        # No connection is open now (each sync closes its own): with an idle one open, HA's stop
        # takes 10 s longer (aiohttp waits that long for the client's answer to its close frame).
        ha.stop()
        assert_sync_fails_and_writes_nothing(client, engine, db_url, CannotConnect)

        yaml = slow_start.install(
            ha.config_dir, not_running_seconds=NOT_RUNNING_SECONDS, starting_seconds=STARTING_SECONDS
        )
        real_ha.write_config(ha.config_dir, ha.port, extra_yaml=yaml)
        ha.start(wait=False)
        assert ha.pid != hass_pid

        wait_for_core_state(ha, "NOT_RUNNING")  # the websocket answers while integrations load
        refused = assert_sync_fails_and_writes_nothing(client, engine, db_url, HomeAssistantStarting)
        assert refused.state == "NOT_RUNNING"  # type: ignore[attr-defined]

        wait_for_core_state(ha, "STARTING")
        refused = assert_sync_fails_and_writes_nothing(client, engine, db_url, HomeAssistantStarting)
        assert refused.state == "STARTING"  # type: ignore[attr-defined]

        wait_for_core_state(ha, "RUNNING")
        snapshot, result = sync_with(client, engine)
    finally:
        # Later starts of the shared HA are plain demo starts again; the loaded integration is inert.
        real_ha.write_config(ha.config_dir, ha.port)
        slow_start.uninstall(ha.config_dir)
        ensure_running(ha)
    assert_registries_unchanged(result)  # a restart changes no registry entry
    assert {s["entity_id"] for s in snapshot.states} == {s["entity_id"] for s in before_stop.states}
    assert_mirror_equals_live_ha(engine, ha, snapshot)
