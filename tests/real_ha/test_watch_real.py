"""Live mode against a real Home Assistant: changes made through HA's own websocket API reach the
mirror through the watcher and a real Dagster (webserver + daemon) whose reconnect sensor and
refresh schedule are OFF; a real restart of HA while watching ends in one sync once it is back."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from homeiq_pipeline import homeassistant as ha_client
from homeiq_pipeline import storage
from homeiq_pipeline.storage.schema import areas, config_entries, devices, entities
from homeiq_pipeline.watch import DagsterRuns, Watcher, WatchSettings

from ..helpers import HOME, LiveDeployment, launched, switch_off_sensor_and_schedule, wait_for
from ..mirror_checks import all_rows, live_rows
from .helpers import RealHomeAssistant, command, ensure_running, real_ha, wait_until

pytestmark = pytest.mark.real_ha


@pytest.fixture(scope="module")
def live(session_ha: RealHomeAssistant, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDeployment]:
    """Dagster (sensor and schedule off) and the watcher (default debounce) on the session's HA,
    shared by this module's tests (one Dagster start per HA release)."""
    ha, tmp_path = session_ha, tmp_path_factory.mktemp("watch-real")
    ensure_running(ha)
    with launched(tmp_path, ha.url, ha.token) as (url, _log):
        switch_off_sensor_and_schedule(url)
        since = time.time()
        watcher = Watcher(lambda: ha_client.HomeAssistantClient(ha.url, ha.token, timeout=real_ha.WS_TIMEOUT),
                          DagsterRuns(url), WatchSettings(home=HOME))
        thread = threading.Thread(target=watcher.run, daemon=True)
        thread.start()
        engine = storage.open_database(f"sqlite:///{tmp_path / 'mirror.db'}")
        try:
            yield LiveDeployment(url, ha, engine, watcher, since)
        finally:
            watcher.stop.set()
            thread.join(timeout=30)
            engine.dispose()


def reasons(runs: list[dict]) -> list[set[str]]:
    return [{re.sub(r" x\d+$", "", part) for part in run["tags"]["homeiq/reason"].split(", ")} for run in runs]


def test_changes_made_in_home_assistant_reach_the_mirror_through_the_watcher(
    ha: RealHomeAssistant, live: LiveDeployment
) -> None:
    # Made one right after the other (the fast tier makes them one at a time): each must arrive.
    before = len(live.finished_runs("the connection sync", at_least=1))
    suffix = uuid.uuid4().hex[:8]
    device = command(ha, "config/device_registry/list")[0]
    sun = next(e for e in command(ha, "config_entries/get") if e["domain"] == "sun")
    doomed_id = command(ha, "input_boolean/create", name=f"HomeIQ doomed {suffix}")["id"]
    doomed = next(e for e in command(ha, "config/entity_registry/list")
                  if e["platform"] == "input_boolean" and e["unique_id"] == doomed_id)
    wait_for("the helper in the mirror", lambda: doomed["id"] in live_rows(live.engine, entities), timeout=120)
    helper_id = area_id = None
    try:
        command(ha, "config/device_registry/update", device_id=device["id"], name_by_user=f"Renamed {suffix}")
        helper_id = command(ha, "input_boolean/create", name=f"HomeIQ live {suffix}")["id"]
        command(ha, "config/entity_registry/remove", entity_id=doomed["entity_id"])
        area_id = command(ha, "config/area_registry/create", name=f"HomeIQ live area {suffix}")["area_id"]
        command(ha, "config_entries/disable", entry_id=sun["entry_id"], disabled_by="user")
        entry = next(e for e in command(ha, "config/entity_registry/list")
                     if e["platform"] == "input_boolean" and e["unique_id"] == helper_id)

        wait_for("the rename", lambda: live_rows(live.engine, devices)[device["id"]]["name_by_user"] == f"Renamed {suffix}",
                 timeout=120)
        wait_for("the new entity", lambda: entry["id"] in live_rows(live.engine, entities), timeout=120)
        wait_for("the removed entity", lambda: [r["removed_at"] is not None for r in all_rows(live.engine, entities)
                                                if r["id"] == doomed["id"]] == [True], timeout=120)
        wait_for("the new area", lambda: area_id in live_rows(live.engine, areas), timeout=120)
        wait_for("the disabled entry",
                 lambda: live_rows(live.engine, config_entries)[sun["entry_id"]]["disabled_by"] == "user", timeout=120)
    finally:
        command(ha, "config_entries/disable", entry_id=sun["entry_id"], disabled_by=None)
        command(ha, "config/device_registry/update", device_id=device["id"], name_by_user=device["name_by_user"])
        for created in (helper_id, doomed_id):
            if created:  # also the one whose registry entry was removed: the helper itself remains
                command(ha, "input_boolean/delete", input_boolean_id=created)
        if area_id:
            command(ha, "config/area_registry/delete", area_id=area_id)
        wait_until(lambda: any(e["entry_id"] == sun["entry_id"] and e["state"] == "loaded"
                               for e in command(ha, "config_entries/get")), "sun loaded again")
    runs = live.finished_runs("every run to finish")[before:]
    assert {run["tags"]["homeiq/trigger"] for run in runs} == {"watch"}
    assert {(run["tags"]["dagster/partition"], run["tags"]["homeiq/sync"]) for run in runs} == {(HOME, HOME)}
    announced = set().union(*reasons(runs))
    assert {"device_registry update", "entity_registry create", "entity_registry remove", "area_registry create",
            "config_entries updated"} <= announced


def test_a_real_restart_while_watching_ends_in_one_sync_once_home_assistant_is_back(
    ha: RealHomeAssistant, live: LiveDeployment, capsys: pytest.CaptureFixture[str]
) -> None:
    before = len(live.finished_runs("the connection sync", at_least=1))
    device = command(ha, "config/device_registry/list")[0]
    try:
        ha.stop()
        stopped = time.monotonic()
        ha.start()  # RUNNING again: same port, same token
        back = time.monotonic()
        live.finished_runs("the reconnect sync", at_least=before + 1)
        synced = time.monotonic()
        # A change made now is announced after everything HA sent the watcher on reconnecting: had
        # that left another sync owed, it would be in this change's run, or a run of its own before it.
        renamed = f"Renamed {uuid.uuid4().hex[:8]}"
        command(ha, "config/device_registry/update", device_id=device["id"], name_by_user=renamed)
        runs = live.finished_runs("the later change's run", at_least=before + 2)[before:]
    finally:
        ensure_running(ha)
        command(ha, "config/device_registry/update", device_id=device["id"], name_by_user=device["name_by_user"])
    live.finished_runs("the run of the name put back", at_least=before + 3)
    with capsys.disabled():
        print(f"\n[real HA] stopped -> RUNNING again in "
              f"{back - stopped:.1f} s -> reconnect sync finished {synced - back:.1f} s later")
    assert len(runs) == 2, [run["tags"] for run in runs]
    assert "reconnected" in reasons(runs)[0]
    assert reasons(runs)[1] == {"device_registry update"}
    assert {run["tags"]["homeiq/trigger"] for run in runs} == {"watch"}


def test_a_rejected_token_stops_the_watcher_after_one_attempt(ha: RealHomeAssistant) -> None:
    log = ha.config_dir / "hass.out"
    failed_logins = log.read_text(errors="replace").count("Login attempt or request with invalid authentication")
    wrong = "not-a-valid-token-" + uuid.uuid4().hex
    runs = DagsterRuns("http://127.0.0.1:1")  # never asked: nothing is synced without a login
    watcher = Watcher(lambda: ha_client.HomeAssistantClient(ha.url, wrong), runs, WatchSettings(home=HOME))
    with pytest.raises(ha_client.AuthenticationFailed, match="Invalid access token or password") as refused:
        watcher.run()  # returns to us by raising: no retry
    assert wrong not in str(refused.value)
    assert watcher.connections == 0 and watcher.requested == []
    # HA logged exactly one failed login (it bans addresses after repeated ones, when configured).
    wait_until(lambda: log.read_text(errors="replace").count("Login attempt or request with invalid authentication")
               == failed_logins + 1, "HA's log of the failed login")
