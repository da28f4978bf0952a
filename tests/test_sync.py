"""Snapshot sync: HA's values stored exactly, no rewrite of unchanged rows, renames, removals,
unknown and missing fields, the data-loss guard. Data is a recording of a real HA 2025.4.4."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from homeiq_pipeline import storage
from homeiq_pipeline.homeassistant import LIST_COMMANDS
from homeiq_pipeline.storage import sync as storage_sync
from homeiq_pipeline.storage import write as storage_write
from homeiq_pipeline.storage.schema import MIRRORED_TABLES, devices, entities, states

from .fake_ha import FakeHomeAssistant
from .helpers import at_once, fetch, sync
from .mirror_checks import BY_FIELD, all_rows, assert_mirror_equals_ha, live_rows


def mutate(server: FakeHomeAssistant, command: str, change: Any) -> None:
    with server.lock:
        change(server.results[command])


def test_recording_is_a_real_untidy_home(fake_ha: FakeHomeAssistant) -> None:
    """The fixture is what a real HA demo sends: a sanity check that later tests are not vacuous."""
    results = fake_ha.results
    entity_list = results["config/entity_registry/list"]
    assert len(results["config/device_registry/list"]) > 10
    assert len(results["config_entries/get"]) > 0  # integrations are NOT zero
    assert any(e["device_id"] is None for e in entity_list)  # entities without a device
    registered = {e["entity_id"] for e in entity_list}
    assert any(s["entity_id"] not in registered for s in results["get_states"])  # states without an entry
    assert any(e["disabled_by"] == "integration" for e in entity_list)


def test_full_sync_stores_every_row_with_has_values(fake_ha: FakeHomeAssistant, engine: sa.Engine) -> None:
    result = sync(fake_ha, engine)
    assert_mirror_equals_ha(engine, fake_ha.results)
    for snapshot_field, command in LIST_COMMANDS.items():
        counts = result.counts[BY_FIELD[snapshot_field].name]
        assert counts.added == counts.live == len(fake_ha.results[command])
        assert counts.updated == counts.removed == counts.unchanged == 0
    with engine.connect() as connection:
        run = connection.execute(sa.select(storage.sync_runs)).mappings().one()
    assert run["outcome"] == "success"
    assert run["ha_version"] == fake_ha.results["get_config"]["version"]
    assert run["location_name"] == fake_ha.results["get_config"]["location_name"]
    assert run["counts"]["ha_devices"]["added"] == len(fake_ha.results["config/device_registry/list"])


def test_a_resync_without_change_writes_no_row(fake_ha: FakeHomeAssistant, engine: sa.Engine) -> None:
    sync(fake_ha, engine)
    before = {spec.name: all_rows(engine, spec) for spec in MIRRORED_TABLES}
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    result = sync(fake_ha, engine)
    written = [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    assert written and all("ha_sync_runs" in s for s in written)  # only the run record
    assert result.rows_written == 0
    assert all(c.unchanged == c.live for c in result.counts.values())
    assert {spec.name: all_rows(engine, spec) for spec in MIRRORED_TABLES} == before


def test_a_renamed_entity_id_keeps_one_row(fake_ha: FakeHomeAssistant, engine: sa.Engine) -> None:
    sync(fake_ha, engine)
    first = fake_ha.results["config/entity_registry/list"][0]
    old_entity_id, registry_id = first["entity_id"], first["id"]
    first_seen = live_rows(engine, entities)[registry_id]["first_seen"]
    mutate(fake_ha, "config/entity_registry/list", lambda lst: lst[0].update(entity_id=old_entity_id + "_renamed"))
    result = sync(fake_ha, engine)
    rows = [r for r in all_rows(engine, entities) if r["id"] == registry_id]
    assert len(rows) == 1
    assert rows[0]["entity_id"] == old_entity_id + "_renamed"
    assert rows[0]["removed_at"] is None and rows[0]["first_seen"] == first_seen
    assert result.counts["ha_entities"].updated == 1 and result.counts["ha_entities"].added == 0
    assert not any(r["entity_id"] == old_entity_id for r in all_rows(engine, entities))


def test_a_removed_device_and_entity_are_marked_and_cleared_when_they_return(
    fake_ha: FakeHomeAssistant, engine: sa.Engine
) -> None:
    sync(fake_ha, engine)
    device = fake_ha.results["config/device_registry/list"][0]
    entity = fake_ha.results["config/entity_registry/list"][0]
    mutate(fake_ha, "config/device_registry/list", lambda lst: lst.remove(device))
    mutate(fake_ha, "config/entity_registry/list", lambda lst: lst.remove(entity))
    result = sync(fake_ha, engine)
    assert (result.counts["ha_devices"].removed, result.counts["ha_entities"].removed) == (1, 1)
    gone_device = next(r for r in all_rows(engine, devices) if r["id"] == device["id"])
    gone_entity = next(r for r in all_rows(engine, entities) if r["id"] == entity["id"])
    assert gone_device["removed_at"] is not None and gone_entity["removed_at"] is not None
    assert device["id"] not in live_rows(engine, devices)

    mutate(fake_ha, "config/device_registry/list", lambda lst: lst.append(device))
    mutate(fake_ha, "config/entity_registry/list", lambda lst: lst.append(entity))
    result = sync(fake_ha, engine)
    assert (result.counts["ha_devices"].added, result.counts["ha_entities"].added) == (1, 1)
    assert live_rows(engine, devices)[device["id"]]["first_seen"] == gone_device["first_seen"]
    assert_mirror_equals_ha(engine, fake_ha.results)


def test_a_changed_row_is_updated_and_only_it(fake_ha: FakeHomeAssistant, engine: sa.Engine) -> None:
    sync(fake_ha, engine)
    mutate(fake_ha, "config/device_registry/list", lambda lst: lst[1].update(name_by_user="Kitchen lamp"))
    result = sync(fake_ha, engine)
    assert result.counts["ha_devices"].updated == 1
    assert result.rows_written == 1
    assert_mirror_equals_ha(engine, fake_ha.results)


def test_unknown_fields_survive_in_raw_and_missing_ones_are_null(fake_ha: FakeHomeAssistant, engine: sa.Engine) -> None:
    def reshape(lst: list[dict[str, Any]]) -> None:
        lst[0]["field_of_a_future_ha"] = {"from": "a future HA"}
        for field in ("has_entity_name", "translation_key", "categories"):
            lst[1].pop(field)

    mutate(fake_ha, "config/entity_registry/list", reshape)
    sync(fake_ha, engine)
    rows = live_rows(engine, entities)
    listed = fake_ha.results["config/entity_registry/list"]
    assert rows[listed[0]["id"]]["raw"]["field_of_a_future_ha"] == {"from": "a future HA"}
    assert rows[listed[1]["id"]]["has_entity_name"] is None
    assert rows[listed[1]["id"]]["categories"] is None
    assert_mirror_equals_ha(engine, fake_ha.results)


def test_the_data_loss_guard_refuses_and_force_passes(fake_ha: FakeHomeAssistant, engine: sa.Engine) -> None:
    sync(fake_ha, engine)
    before = {spec.name: all_rows(engine, spec) for spec in MIRRORED_TABLES}
    mutate(fake_ha, "config/device_registry/list", lambda lst: lst.clear())
    with pytest.raises(storage.DataLossRefused, match=r"refusing to mark \d+ of \d+ ha_devices rows \(100%\)"):
        sync(fake_ha, engine)
    assert {spec.name: all_rows(engine, spec) for spec in MIRRORED_TABLES} == before
    result = sync(fake_ha, engine, force=True)
    assert result.counts["ha_devices"].live == 0
    assert result.counts["ha_devices"].removed == len(before["ha_devices"])


def test_the_guard_allows_small_removals_and_its_share_is_configurable(
    fake_ha: FakeHomeAssistant, engine: sa.Engine
) -> None:
    sync(fake_ha, engine)
    mutate(fake_ha, "config/entity_registry/list", lambda lst: lst.pop())
    assert sync(fake_ha, engine).counts["ha_entities"].removed == 1
    mutate(fake_ha, "config/entity_registry/list", lambda lst: lst.pop())
    with pytest.raises(storage.DataLossRefused):
        sync(fake_ha, engine, max_removed_share=0.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda lst: lst.append(dict(lst[0])), "appears twice in one snapshot"),
        (lambda lst: lst[0].pop("entity_id"), "has no 'entity_id'"),
        (lambda lst: lst[0].update(last_changed=1700000000), "field 'last_changed' is int 1700000000, expected a string"),
        (lambda lst: lst[0].update(state=["on"]), "field 'state' is list"),
    ],
)
def test_malformed_entries_are_refused_clearly_and_nothing_is_written(
    fake_ha: FakeHomeAssistant, engine: sa.Engine, change: Any, message: str
) -> None:
    sync(fake_ha, engine)
    before = {spec.name: all_rows(engine, spec) for spec in MIRRORED_TABLES}
    # Devices are stored first: this change would be written if the states did not fail the sync.
    mutate(fake_ha, "config/device_registry/list", lambda lst: lst.pop())
    mutate(fake_ha, "get_states", change)
    with pytest.raises(storage.UnexpectedPayload, match=message):
        sync(fake_ha, engine)
    assert {spec.name: all_rows(engine, spec) for spec in MIRRORED_TABLES} == before


def test_a_failure_half_way_through_the_writes_rolls_everything_back(
    fake_ha: FakeHomeAssistant, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync(fake_ha, engine)
    before = {spec.name: all_rows(engine, spec) for spec in MIRRORED_TABLES}
    with engine.connect() as connection:
        runs_before = connection.execute(sa.select(sa.func.count()).select_from(storage.sync_runs)).scalar()
    mutate(fake_ha, "config/device_registry/list", lambda lst: lst.pop())
    mutate(fake_ha, "config/entity_registry/list", lambda lst: lst[0].update(name="changed"))
    applied: list[str] = []
    real_apply = storage_write.apply_plan

    def apply_then_crash(connection: sa.Connection, plan: Any, *args: Any) -> None:
        real_apply(connection, plan, *args)
        applied.append(plan.spec.name)
        if len(applied) == 3:
            raise RuntimeError("simulated crash after three tables were written")

    monkeypatch.setattr(storage_write, "apply_plan", apply_then_crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        sync(fake_ha, engine)
    assert applied[:2] == ["ha_devices", "ha_entities"]
    assert {spec.name: all_rows(engine, spec) for spec in MIRRORED_TABLES} == before
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(storage.sync_runs)).scalar() == runs_before


def sync_run_rows(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(sa.select(storage.sync_runs)).mappings()]


def test_an_interrupt_just_after_the_run_is_recorded_leaves_no_running_row(
    fake_ha: FakeHomeAssistant, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C between the commit of the "running" record and the writes: the database is as it was
    (no "running" row for the next sync to call interrupted), as the CLI then says."""
    sync(fake_ha, engine)
    before = {spec.name: all_rows(engine, spec) for spec in MIRRORED_TABLES}
    before_runs = sync_run_rows(engine)
    mutate(fake_ha, "config/device_registry/list", lambda lst: lst.pop())
    real_transaction = storage_sync.write_transaction
    opened: list[int] = []

    @contextlib.contextmanager
    def interrupted_after_the_first(engine: sa.Engine, instance: str | None = None) -> Iterator[sa.Connection]:
        with real_transaction(engine, instance) as connection:
            yield connection
        opened.append(1)
        if len(opened) == 1:  # the record is committed; the writes have not begun
            with engine.connect() as reader:
                outcomes = reader.execute(sa.select(storage.sync_runs.c.outcome)).scalars().all()
            assert outcomes.count("running") == 1, outcomes  # the window is real
            raise KeyboardInterrupt

    monkeypatch.setattr(storage_sync, "write_transaction", interrupted_after_the_first)
    with pytest.raises(KeyboardInterrupt):
        sync(fake_ha, engine)
    assert {spec.name: all_rows(engine, spec) for spec in MIRRORED_TABLES} == before
    assert sync_run_rows(engine) == before_runs


def test_instances_are_kept_apart(fake_ha: FakeHomeAssistant, engine: sa.Engine) -> None:
    snapshot = fetch(fake_ha)
    storage.sync_snapshot(engine, snapshot, instance="home")
    storage.sync_snapshot(engine, snapshot, instance="cabin")
    mutate(fake_ha, "config/device_registry/list", lambda lst: lst.pop())
    storage.sync_snapshot(engine, fetch(fake_ha), instance="cabin")
    assert len(live_rows(engine, devices, "home")) == len(live_rows(engine, devices, "cabin")) + 1


def test_states_are_keyed_by_entity_id_with_has_timestamps(fake_ha: FakeHomeAssistant, engine: sa.Engine) -> None:
    sync(fake_ha, engine)
    rows = live_rows(engine, states)
    state = fake_ha.results["get_states"][0]
    assert rows[state["entity_id"]]["last_changed"] == state["last_changed"]
    assert rows[state["entity_id"]]["attributes"] == state["attributes"]


def test_two_syncs_at_once_queue_instead_of_failing(fake_ha: FakeHomeAssistant, db_url: str) -> None:
    snapshot = fetch(fake_ha)
    engines = [storage.open_database(db_url) for _ in range(2)]
    results = at_once(lambda engine: storage.sync_snapshot(engine, snapshot), engines)
    assert all(isinstance(r, storage.SyncResult) for r in results), results
    added = sorted(r.counts["ha_devices"].added for r in results)  # type: ignore[union-attr]
    assert added == [0, len(fake_ha.results["config/device_registry/list"])]


def test_an_integer_beyond_64_bits_is_refused_by_name(fake_ha: FakeHomeAssistant, engine: sa.Engine) -> None:
    mutate(fake_ha, "config/floor_registry/list", lambda lst: lst[0].update(level=2**70))
    with pytest.raises(storage.UnexpectedPayload, match=r"ha_floors: floor_id '\w+': field 'level' is int .* expected a 64-bit integer"):
        sync(fake_ha, engine)
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(storage.sync_runs)).scalar() == 0


def test_a_64_bit_integer_is_stored_on_every_database(fake_ha: FakeHomeAssistant, engine: sa.Engine) -> None:
    mutate(fake_ha, "config/floor_registry/list", lambda lst: lst[0].update(level=2**62))
    mutate(fake_ha, "config_entries/get", lambda lst: lst[0].update(num_subentries=-(2**40)))
    sync(fake_ha, engine)
    assert_mirror_equals_ha(engine, fake_ha.results)


def changes_of(engine: sa.Engine, run_id: int) -> set[tuple[str, str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(storage.registry_changes).where(storage.registry_changes.c.sync_run_id == run_id)
        ).mappings()
        found = {(row["table_name"], row["action"], key) for row in rows for key in row["keys"]}
        counted = sum(row["count"] for row in connection.execute(
            sa.select(storage.registry_changes).where(storage.registry_changes.c.sync_run_id == run_id)).mappings())
        assert counted == len(found)
        return found


def test_each_sync_logs_what_it_changed_in_the_registries(fake_ha: FakeHomeAssistant, engine: sa.Engine) -> None:
    first = sync(fake_ha, engine)
    logged = changes_of(engine, first.run_id)
    registry_rows = sum(len(fake_ha.results[c]) for f, c in LIST_COMMANDS.items() if f != "states")
    assert len(logged) == registry_rows and {action for _, action, _ in logged} == {"added"}
    assert not any(table == "ha_states" for table, _, _ in logged)  # states change too often to log

    entity_list = fake_ha.results["config/entity_registry/list"]
    renamed, dropped = entity_list[0], entity_list[1]
    mutate(fake_ha, "config/entity_registry/list", lambda lst: (lst[0].update(entity_id="light.renamed"), lst.remove(dropped)))
    mutate(fake_ha, "config/area_registry/list", lambda lst: lst.append({"area_id": "garage", "name": "Garage"}))
    second = sync(fake_ha, engine)
    assert changes_of(engine, second.run_id) == {
        ("ha_entities", "updated", renamed["id"]),
        ("ha_entities", "removed", dropped["id"]),
        ("ha_areas", "added", "garage"),
    }
    assert changes_of(engine, sync(fake_ha, engine).run_id) == set()


def _lock_waiters(engine: sa.Engine) -> int:
    """Connections of this database waiting for an advisory lock (PostgreSQL)."""
    with engine.connect() as connection:
        return connection.execute(sa.text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )).scalar_one()


def test_on_postgresql_homes_sync_side_by_side_and_one_homes_writers_take_turns(
    fake_ha: FakeHomeAssistant, postgres_url: str
) -> None:
    import threading

    from .helpers import wait_for

    snapshot = fetch(fake_ha)
    engine = storage.open_database(postgres_url)
    devices_listed = len(fake_ha.results["config/device_registry/list"])
    results: dict[str, object] = {}

    def run(instance: str) -> threading.Thread:
        def sync_one() -> None:
            try:
                results[instance] = storage.sync_snapshot(engine, snapshot, instance=instance)
            except Exception as exc:  # recorded, then asserted below
                results[instance] = exc

        thread = threading.Thread(target=sync_one)
        thread.start()
        return thread

    with storage.write_transaction(engine, "home"):  # a writer of "home" is mid-transaction
        cabin = run("cabin")  # another home does not wait for it
        cabin.join(60)
        assert isinstance(results.get("cabin"), storage.SyncResult), results
        home = run("home")  # the same home does
        wait_for("the second writer of 'home' to wait for the first", lambda: _lock_waiters(engine) == 1, timeout=30)
        assert "home" not in results
    home.join(60)
    assert isinstance(results.get("home"), storage.SyncResult), results
    assert results["home"].counts["ha_devices"].added == devices_listed  # type: ignore[union-attr]
    assert len(live_rows(engine, devices, "home")) == len(live_rows(engine, devices, "cabin")) == devices_listed
    engine.dispose()


@pytest.mark.parametrize(
    ("command", "change", "field", "refusal"),
    [
        ("config/device_registry/list", lambda lst: lst[0].update(name="Lamp\x00"), "name",
         "expected a string without NUL characters"),
        ("get_states", lambda lst: lst[0].update(entity_id="sensor." + "x" * 300), "entity_id",
         "expected a string of at most 255 characters"),
    ],
    ids=["nul-character", "key-over-255-characters"],
)
def test_values_only_sqlite_can_store_are_kept_there_and_refused_by_name_on_postgresql(
    fake_ha: FakeHomeAssistant, engine: sa.Engine, database: str, command: str, change: Any, field: str, refusal: str
) -> None:
    mutate(fake_ha, command, change)
    if database == "sqlite":
        sync(fake_ha, engine)
        assert_mirror_equals_ha(engine, fake_ha.results)
        return
    with pytest.raises(storage.UnexpectedPayload, match=rf"field '{field}' is str .*, {refusal}"):
        sync(fake_ha, engine)
    assert all(all_rows(engine, spec) == [] for spec in MIRRORED_TABLES)


def test_json_values_are_kept_exactly_on_both_databases(fake_ha: FakeHomeAssistant, engine: sa.Engine) -> None:
    odd = {"nul": "a\x00b", "unicode": "Küche ☀ 🌡", "big": 2**70, "nested": [{"x": None}], "float": 0.1 + 0.2}
    mutate(fake_ha, "get_states", lambda lst: lst[0]["attributes"].update(odd))
    sync(fake_ha, engine)
    assert_mirror_equals_ha(engine, fake_ha.results)
