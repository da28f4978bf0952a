"""The analytics, computed from a mirror of the real Home Assistant, against numbers computed here
straight from HA's own lists (the definitions are in homeiq_pipeline/analytics/compute.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from homeiq_pipeline import analytics, storage

from .helpers import RealHomeAssistant, command, read_ha, sync

pytestmark = pytest.mark.real_ha


@pytest.fixture
def placed(ha: RealHomeAssistant) -> Iterator[None]:
    """Put two devices and one entity in areas (the demo places none), and take them out again."""
    areas = [a["area_id"] for a in command(ha, "config/area_registry/list")]
    devices = command(ha, "config/device_registry/list")[:2]
    entity = next(e for e in command(ha, "config/entity_registry/list") if e["device_id"] and e["area_id"] is None)
    try:
        for device, area in zip(devices, areas, strict=False):
            command(ha, "config/device_registry/update", device_id=device["id"], area_id=area)
        command(ha, "config/entity_registry/update", entity_id=entity["entity_id"], area_id=areas[-1])
        yield
    finally:
        for device in devices:
            command(ha, "config/device_registry/update", device_id=device["id"], area_id=device["area_id"])
        command(ha, "config/entity_registry/update", entity_id=entity["entity_id"], area_id=None)


def test_the_analytics_equal_numbers_computed_from_has_own_lists(ha: RealHomeAssistant, placed: None, tmp_path) -> None:
    engine = storage.open_database(f"sqlite:///{tmp_path / 'mirror.db'}")
    snapshot, _ = sync(ha, engine)
    refreshed = analytics.refresh_analytics(engine, "home")
    lists = read_ha(ha)
    entries = lists["config_entries/get"]
    device_list = lists["config/device_registry/list"]
    entity_list = lists["config/entity_registry/list"]
    states = snapshot.states  # states tick; the analytics were computed from these

    (overview,) = refreshed.frames["home_overview"].to_dict("records")
    assert overview["integrations"] == len(entries) > 0
    assert overview["integrations_loaded"] == sum(e["state"] == "loaded" for e in entries)
    assert overview["integration_health_pct"] == round(100 * overview["integrations_loaded"] / len(entries), 2)
    assert overview["devices"] == len(device_list) and overview["entities"] == len(entity_list)
    assert overview["entities_disabled"] == sum(e["disabled_by"] is not None for e in entity_list)
    assert overview["entities_with_state"] == len(states)
    assert overview["unknown_entities"] == sum(s["state"] == "unknown" for s in states)
    assert overview["unavailable_entities"] == sum(s["state"] == "unavailable" for s in states)

    # devices and entities per area, from HA's device registry grouped by area
    device_area = {d["id"]: d["area_id"] for d in device_list}
    devices_by_area = Counter(d["area_id"] for d in device_list)
    entities_by_area = Counter(e["area_id"] or device_area.get(e["device_id"]) for e in entity_list)
    area_rows = {row["area_id"]: row for row in refreshed.frames["area_summary"].to_dict("records")}
    for area in lists["config/area_registry/list"]:
        assert area_rows[area["area_id"]]["devices"] == devices_by_area[area["area_id"]]
        assert area_rows[area["area_id"]]["entities"] == entities_by_area[area["area_id"]]
    assert sum(1 for n in devices_by_area.values() if n) >= 2  # the fixture placed devices: not vacuous
    assert area_rows[None]["devices"] == devices_by_area[None]

    # integrations: each config entry's devices, from the device's primary config entry
    domain_of = {e["entry_id"]: e["domain"] for e in entries}
    devices_by_domain = Counter(domain_of[d["primary_config_entry"] or d["config_entries"][0]] for d in device_list)
    health = {row["domain"]: row for row in refreshed.frames["integration_health"].to_dict("records")}
    for domain, count in devices_by_domain.items():
        assert health[domain]["devices"] == count
    assert sum(row["config_entries"] for row in health.values()) == len(entries)
    ranked = [row["devices"] for row in refreshed.frames["integration_health"].to_dict("records")]
    assert ranked == sorted(ranked, reverse=True)

    # the device inventory: one row per device, with HA's entity counts
    entities_per_device = Counter(e["device_id"] for e in entity_list if e["device_id"])
    inventory = {row["device_id"]: row for row in refreshed.frames["device_inventory"].to_dict("records")}
    assert inventory.keys() == device_area.keys()
    assert all(inventory[d]["entities"] == entities_per_device[d] for d in inventory)
    _assert_stored(engine, refreshed.frames)


def _assert_stored(engine: sa.Engine, frames: dict[str, Any]) -> None:
    """What the tables hold is what was computed."""
    with engine.connect() as connection:
        for name, frame in frames.items():
            stored = connection.execute(sa.text(f"SELECT count(*) FROM analytics_{name}")).scalar()
            assert stored == len(frame), name
