"""Small helpers for the real tier: read HA directly, sync into the mirror, compare the two."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from homeiq_pipeline import storage
from homeiq_pipeline.homeassistant import (
    LIST_COMMANDS,
    CannotConnect,
    HomeAssistantClient,
    RequestTimeout,
    Snapshot,
    fetch_snapshot,
)
from homeiq_pipeline.storage.schema import MIRRORED_TABLES, states

from ..helpers import database_fingerprint
from ..mirror_checks import BY_FIELD, all_rows, assert_mirror_equals_ha
from ..servers import SCRIPTS  # noqa: F401  (it puts scripts/ on sys.path)
import real_ha  # noqa: E402  (scripts/real_ha.py: the harness shared with record_fixtures.py)
import large_home  # noqa: E402  (scripts/large_home.py)
import record_fixtures  # noqa: E402  (scripts/record_fixtures.py)
from real_ha import RealHomeAssistant  # noqa: E402

REGISTRY_TABLES: tuple[str, ...] = tuple(spec.name for spec in MIRRORED_TABLES if spec is not states)
CORE_STATES = ("NOT_RUNNING", "STARTING", "RUNNING")  # the order HA goes through while starting


def start_or_fail(server: RealHomeAssistant) -> None:
    """Start HA; any failure fails the test loudly with HA's own log, never a skip."""
    try:
        server.start()
    except Exception as exc:
        # The harness's own errors already end with HA's log; others (onboarding, token) do not.
        log = "" if "last lines of" in str(exc) else f"\nlast lines of {server.config_dir}/hass.out:\n{server.log_tail()}"
        pytest.fail(f"Home Assistant in {server.config_dir} did not start: {exc}{log}", pytrace=False)


def ensure_running(server: RealHomeAssistant) -> None:
    """Bring the session's HA back to RUNNING if an earlier (failed) test left it otherwise."""
    if not server.is_alive():
        server.stop()  # forget the exited process
        start_or_fail(server)
    elif core_state(server) != "RUNNING":
        server.wait_until_running()


def command(server: RealHomeAssistant, command_type: str, **payload: Any) -> Any:
    """One websocket command on a fresh connection (the project's client, nothing cached)."""
    return real_ha.ws_command(server.url, server.token, command_type, **payload)


def core_state(server: RealHomeAssistant) -> str:
    """HA's state per `get_config`, or "down" while its websocket does not answer."""
    try:
        return str(command(server, "get_config")["state"])
    except (CannotConnect, RequestTimeout):
        return "down"


def read_ha(server: RealHomeAssistant) -> dict[str, Any]:
    """`get_config` and every list a snapshot uses, read straight from HA right now."""
    results = {"get_config": command(server, "get_config")}
    results.update({name: command(server, name) for name in LIST_COMMANDS.values()})
    return results


def sync_with(client: HomeAssistantClient, engine: sa.Engine) -> tuple[Snapshot, storage.SyncResult]:
    """What `homeiq-pipeline sync` does: one connection, one snapshot, one transaction."""
    with client:
        snapshot = fetch_snapshot(client)
    return snapshot, storage.sync_snapshot(engine, snapshot)


def sync(server: RealHomeAssistant, engine: sa.Engine) -> tuple[Snapshot, storage.SyncResult]:
    return sync_with(HomeAssistantClient(server.url, server.token, timeout=real_ha.WS_TIMEOUT), engine)


def entity_ids(state_list: list[dict[str, Any]]) -> set[str]:
    return {state["entity_id"] for state in state_list}


def assert_mirror_equals_live_ha(engine: sa.Engine, server: RealHomeAssistant, snapshot: Snapshot) -> dict[str, Any]:
    """The mirror equals HA field by field, and nothing else is live. Returns HA's fresh lists.

    Registries hold still, so they are compared with fresh reads. The demo's states tick, so they
    are compared exactly with the snapshot this sync stored; a fresh read must then have the same
    entity_ids, and any state that differs from its row must have been reported since.
    """
    fresh = read_ha(server)
    assert entity_ids(fresh["get_states"]) == entity_ids(snapshot.states)
    assert_mirror_equals_ha(engine, {**fresh, "get_states": snapshot.states})
    stored = {state["entity_id"]: state for state in snapshot.states}
    for state in fresh["get_states"]:
        old = stored[state["entity_id"]]
        if state != old:
            assert _when(state["last_reported"]) > _when(old["last_reported"]), state["entity_id"]
    return fresh


def _when(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def changes(result: storage.SyncResult, table: str) -> tuple[int, int, int]:
    """(added, updated, removed) of one table in one sync."""
    counts = result.counts[table]
    return counts.added, counts.updated, counts.removed


def assert_registries_unchanged(result: storage.SyncResult, *, except_for: tuple[str, ...] = ()) -> None:
    """No registry table but `except_for` gained, changed or lost a row (states tick: not checked)."""
    changed = {t: changes(result, t) for t in REGISTRY_TABLES if t not in except_for and changes(result, t) != (0, 0, 0)}
    assert changed == {}


def database_state(engine: sa.Engine, db_url: str) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    """The logical fingerprint (schema and every row, see `database_fingerprint`) and every row of
    every mirrored table, sync runs included."""
    fingerprint = database_fingerprint(db_url)
    rows = {spec.name: all_rows(engine, spec) for spec in MIRRORED_TABLES}
    with engine.connect() as connection:
        rows["ha_sync_runs"] = [dict(r) for r in connection.execute(sa.select(storage.sync_runs)).mappings()]
    return fingerprint, rows


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll until HA has applied a change (not a timing assertion: only a generous bound)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"Home Assistant did not get there within {timeout:g} s: {what}")
        time.sleep(0.05)


def wait_for_core_state(server: RealHomeAssistant, wanted: str, timeout: float = 60) -> None:
    """Poll `get_config` until HA reports `wanted`; fail at once if it is already past it."""
    deadline = time.monotonic() + timeout
    while (state := core_state(server)) != wanted:
        if state in CORE_STATES and CORE_STATES.index(state) > CORE_STATES.index(wanted):
            raise AssertionError(f"Home Assistant went past {wanted} (it is {state}): the window was missed")
        if not server.is_alive() or time.monotonic() > deadline:
            raise AssertionError(
                f"Home Assistant never reported {wanted} (last: {state}); its log:\n{server.log_tail()}"
            )
        time.sleep(0.05)


def rows_where(engine: sa.Engine, snapshot_field: str, field: str, value: Any) -> list[dict[str, Any]]:
    """Every stored row (live or removed) of one table whose `field` equals `value`."""
    return [row for row in all_rows(engine, BY_FIELD[snapshot_field]) if row[field] == value]
