"""Changes made through HA's own websocket API between two syncs reach the mirror, and only they.

Every test starts from a fresh mirror of the shared HA as it is now, and undoes its change in HA
afterwards (even when it fails), so the other tests see the demo house as it was.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from homeiq_pipeline.storage.schema import areas, devices, entities, states

from ..mirror_checks import all_rows, live_rows
from .helpers import (
    RealHomeAssistant,
    assert_mirror_equals_live_ha,
    assert_registries_unchanged,
    changes,
    command,
    entity_ids,
    rows_where,
    sync,
    wait_until,
)

pytestmark = pytest.mark.real_ha

Entry = dict[str, Any]


def has_state(ha: RealHomeAssistant, entity_id: str) -> bool:
    return entity_id in entity_ids(command(ha, "get_states"))


def registry_entry(ha: RealHomeAssistant, **match: Any) -> Entry:
    """The one entity registry entry whose fields equal `match`."""
    found = [e for e in command(ha, "config/entity_registry/list") if all(e[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, found)
    return found[0]


@pytest.fixture
def make_area(ha: RealHomeAssistant) -> Iterator[Callable[[], Entry]]:
    """Creates areas with unique names; deletes those still there afterwards."""
    created: list[str] = []

    def make() -> Entry:
        area = command(ha, "config/area_registry/create", name=f"HomeIQ test area {uuid.uuid4().hex[:8]}")
        created.append(area["area_id"])
        return dict(area)

    yield make
    remaining = {a["area_id"] for a in command(ha, "config/area_registry/list")}
    for area_id in set(created) & remaining:
        command(ha, "config/area_registry/delete", area_id=area_id)


@pytest.fixture
def make_helper(ha: RealHomeAssistant) -> Iterator[Callable[[], Entry]]:
    """Creates `input_boolean` helpers (entities with no device and no config entry, so changing
    them never makes HA reload an integration behind the other tests' backs) and returns each
    one's registry entry once its state exists; deletes them all afterwards."""
    created: list[str] = []

    def make() -> Entry:
        helper = command(ha, "input_boolean/create", name=f"HomeIQ test switch {uuid.uuid4().hex[:8]}")
        created.append(helper["id"])
        entry = registry_entry(ha, platform="input_boolean", unique_id=helper["id"])
        wait_until(lambda: has_state(ha, entry["entity_id"]), f"state of {entry['entity_id']}")
        return entry

    yield make
    for helper_id in created:
        command(ha, "input_boolean/delete", input_boolean_id=helper_id)


def test_a_created_area_is_added_and_a_deleted_one_is_marked_removed(
    ha: RealHomeAssistant, engine: sa.Engine, make_area: Callable[[], Entry]
) -> None:
    sync(ha, engine)
    area = make_area()
    snapshot, result = sync(ha, engine)
    assert changes(result, "ha_areas") == (1, 0, 0)
    assert_registries_unchanged(result, except_for=("ha_areas",))
    assert live_rows(engine, areas)[area["area_id"]]["name"] == area["name"]
    assert_mirror_equals_live_ha(engine, ha, snapshot)

    command(ha, "config/area_registry/delete", area_id=area["area_id"])
    snapshot, result = sync(ha, engine)
    assert changes(result, "ha_areas") == (0, 0, 1)
    assert_registries_unchanged(result, except_for=("ha_areas",))
    [row] = rows_where(engine, "areas", "area_id", area["area_id"])
    assert row["removed_at"] is not None
    assert_mirror_equals_live_ha(engine, ha, snapshot)


def test_a_device_assigned_to_an_area_updates_its_one_row(
    ha: RealHomeAssistant, engine: sa.Engine, make_area: Callable[[], Entry]
) -> None:
    area = make_area()
    device = command(ha, "config/device_registry/list")[0]
    sync(ha, engine)
    first_seen = live_rows(engine, devices)[device["id"]]["first_seen"]
    try:
        command(ha, "config/device_registry/update", device_id=device["id"], area_id=area["area_id"])
        snapshot, result = sync(ha, engine)
        assert_mirror_equals_live_ha(engine, ha, snapshot)
    finally:
        command(ha, "config/device_registry/update", device_id=device["id"], area_id=device["area_id"])
    assert changes(result, "ha_devices") == (0, 1, 0)
    assert_registries_unchanged(result, except_for=("ha_devices",))
    row = live_rows(engine, devices)[device["id"]]
    assert (row["area_id"], row["first_seen"]) == (area["area_id"], first_seen)
    assert row["modified_at"] > device["modified_at"]
    assert len(rows_where(engine, "devices", "id", device["id"])) == 1


def test_a_renamed_entity_id_updates_the_same_row_and_moves_its_state(ha: RealHomeAssistant, engine: sa.Engine) -> None:
    states_now = entity_ids(command(ha, "get_states"))
    entity = next(
        e
        for e in command(ha, "config/entity_registry/list")
        if e["platform"] == "demo" and e["device_id"] and e["entity_id"] in states_now
    )
    old_id, new_id = entity["entity_id"], f"{entity['entity_id']}_homeiq_renamed"
    sync(ha, engine)
    first_seen = live_rows(engine, entities)[entity["id"]]["first_seen"]
    try:
        command(ha, "config/entity_registry/update", entity_id=old_id, new_entity_id=new_id)
        # HA re-adds the entity under its new id a moment after answering.
        wait_until(lambda: has_state(ha, new_id) and not has_state(ha, old_id), f"{old_id} -> {new_id}")
        snapshot, result = sync(ha, engine)
        assert_mirror_equals_live_ha(engine, ha, snapshot)
    finally:
        command(ha, "config/entity_registry/update", entity_id=new_id, new_entity_id=old_id)
        wait_until(lambda: has_state(ha, old_id), f"{new_id} renamed back to {old_id}")
    assert changes(result, "ha_entities") == (0, 1, 0)
    assert_registries_unchanged(result, except_for=("ha_entities",))
    [row] = rows_where(engine, "entities", "id", entity["id"])  # one row, the registry's stable id
    assert (row["entity_id"], row["removed_at"], row["first_seen"]) == (new_id, None, first_seen)
    assert rows_where(engine, "entities", "entity_id", old_id) == []
    # States are keyed by entity_id: the old one's row is marked removed, the new one is added.
    assert (result.counts["ha_states"].added, result.counts["ha_states"].removed) == (1, 1)
    assert new_id in live_rows(engine, states)
    assert [r["removed_at"] is not None for r in all_rows(engine, states) if r["entity_id"] == old_id] == [True]


def test_an_entity_disabled_by_the_user_stays_with_disabled_by_user_and_loses_its_state(
    ha: RealHomeAssistant, engine: sa.Engine, make_helper: Callable[[], Entry]
) -> None:
    entry = make_helper()
    sync(ha, engine)
    command(ha, "config/entity_registry/update", entity_id=entry["entity_id"], disabled_by="user")
    wait_until(lambda: not has_state(ha, entry["entity_id"]), f"{entry['entity_id']} disabled")
    snapshot, result = sync(ha, engine)
    assert changes(result, "ha_entities") == (0, 1, 0)
    assert_registries_unchanged(result, except_for=("ha_entities",))
    row = live_rows(engine, entities)[entry["id"]]
    assert (row["entity_id"], row["disabled_by"]) == (entry["entity_id"], "user")
    assert (result.counts["ha_states"].added, result.counts["ha_states"].removed) == (0, 1)
    assert entry["entity_id"] not in live_rows(engine, states)
    assert_mirror_equals_live_ha(engine, ha, snapshot)


def test_an_entity_removed_from_the_registry_is_marked_removed_not_deleted(
    ha: RealHomeAssistant, engine: sa.Engine, make_helper: Callable[[], Entry]
) -> None:
    entry = make_helper()
    sync(ha, engine)
    command(ha, "config/entity_registry/remove", entity_id=entry["entity_id"])
    wait_until(lambda: not has_state(ha, entry["entity_id"]), f"{entry['entity_id']} removed")
    snapshot, result = sync(ha, engine)
    assert changes(result, "ha_entities") == (0, 0, 1)
    assert_registries_unchanged(result, except_for=("ha_entities",))
    [row] = rows_where(engine, "entities", "id", entry["id"])
    assert row["removed_at"] is not None and row["entity_id"] == entry["entity_id"]
    assert (result.counts["ha_states"].added, result.counts["ha_states"].removed) == (0, 1)
    assert_mirror_equals_live_ha(engine, ha, snapshot)


def test_entities_added_in_ha_become_new_rows_with_their_states(
    ha: RealHomeAssistant, engine: sa.Engine, make_helper: Callable[[], Entry]
) -> None:
    sync(ha, engine)
    new = [make_helper(), make_helper()]
    snapshot, result = sync(ha, engine)
    assert changes(result, "ha_entities") == (2, 0, 0)
    assert_registries_unchanged(result, except_for=("ha_entities",))
    assert (result.counts["ha_states"].added, result.counts["ha_states"].removed) == (2, 0)
    rows = live_rows(engine, entities)
    assert {(rows[e["id"]]["entity_id"], rows[e["id"]]["platform"]) for e in new} == {
        (e["entity_id"], "input_boolean") for e in new
    }
    assert {e["entity_id"] for e in new} <= live_rows(engine, states).keys()
    assert_mirror_equals_live_ha(engine, ha, snapshot)

