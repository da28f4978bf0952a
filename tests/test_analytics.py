"""Analytics on a small home whose every number is computed by hand below, run through Dagster
(sync job: registry assets, then analytics), read back from the analytics tables with SQL."""

from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from homeiq_pipeline.defs.analytics import assets as analytics_assets
from homeiq_pipeline.defs.analytics import checks as analytics_checks
from homeiq_pipeline.defs.home_assistant import assets as ha_assets
from homeiq_pipeline.defs.home_assistant.resources import one_home
from homeiq_pipeline.defs.resources import MirrorDatabase
from homeiq_pipeline.storage import DEFAULT_INSTANCE as HOME

from .fake_ha import FakeHomeAssistant
from .helpers import TOKEN

T1, T2 = "2026-11-27T06:00:00+00:00", "2026-11-27T07:00:00+00:00"


def small_home() -> dict[str, Any]:
    entry = {"source": "user", "supports_options": True}
    return {
        "get_config": {"version": "2025.4.4", "state": "RUNNING", "location_name": "Small home"},
        "config_entries/get": [
            {**entry, "entry_id": "e_hue", "domain": "hue", "title": "Hue", "state": "loaded", "disabled_by": None},
            {**entry, "entry_id": "e_zwave", "domain": "zwave_js", "title": "Z-Wave", "state": "setup_retry", "disabled_by": None},
            {**entry, "entry_id": "e_old", "domain": "zwave_js", "title": "Z-Wave old", "state": "not_loaded", "disabled_by": "user"},
            {**entry, "entry_id": "e_cast", "domain": "cast", "title": "Cast", "state": "setup_error", "disabled_by": None},
        ],
        "config/floor_registry/list": [{"floor_id": "f1", "name": "Ground", "level": 0, "aliases": []}],
        "config/area_registry/list": [
            {"area_id": "kitchen", "name": "Kitchen", "floor_id": "f1"},
            {"area_id": "office", "name": "Office", "floor_id": None},
        ],
        "config/label_registry/list": [],
        "config/device_registry/list": [
            {"id": "d1", "name": "Hue bridge", "name_by_user": None, "manufacturer": "Signify", "model": "BSB002", "sw_version": "1.60",
             "area_id": "kitchen", "via_device_id": None, "disabled_by": None,
             "config_entries": ["e_hue"], "primary_config_entry": "e_hue"},
            {"id": "d2", "name": "Lamp", "name_by_user": "Kitchen lamp", "manufacturer": "Signify", "model": "LCT015",
             "area_id": "kitchen", "via_device_id": "d1", "disabled_by": None,
             "config_entries": ["e_hue"], "primary_config_entry": "e_hue"},
            {"id": "d3", "name": "Stick", "name_by_user": None, "manufacturer": "Aeotec", "model": "Z-Stick",
             "area_id": None, "via_device_id": None, "disabled_by": None,
             "config_entries": ["e_zwave"], "primary_config_entry": None},
            # HA 2026.8 shape: one config_entry_id, no config_entries / primary_config_entry
            {"id": "d4", "name": "TV", "name_by_user": None, "manufacturer": "Google", "model": "Chromecast",
             "area_id": "office", "via_device_id": None, "disabled_by": "user", "config_entry_id": "e_cast"},
        ],
        "config/entity_registry/list": [
            {"id": "u1", "entity_id": "light.kitchen_lamp", "device_id": "d2", "area_id": None,
             "config_entry_id": "e_hue", "platform": "hue", "disabled_by": None},
            {"id": "u2", "entity_id": "sensor.bridge_temp", "device_id": "d1", "area_id": "office",
             "config_entry_id": "e_hue", "platform": "hue", "disabled_by": None},
            {"id": "u3", "entity_id": "switch.stick_relay", "device_id": "d3", "area_id": None,
             "config_entry_id": "e_zwave", "platform": "zwave_js", "disabled_by": None},
            {"id": "u4", "entity_id": "sensor.yaml_thing", "device_id": None, "area_id": None,
             "config_entry_id": None, "platform": "template", "disabled_by": None},
            {"id": "u5", "entity_id": "media_player.tv", "device_id": "d4", "area_id": None,
             "config_entry_id": "e_cast", "platform": "cast", "disabled_by": "integration"},
        ],
        "get_states": [
            {"entity_id": "light.kitchen_lamp", "state": "on", "attributes": {}, "last_changed": T1},
            {"entity_id": "sensor.bridge_temp", "state": "unavailable", "attributes": {}, "last_changed": T1},
            {"entity_id": "switch.stick_relay", "state": "unavailable", "attributes": {}, "last_changed": T2},
            {"entity_id": "sensor.yaml_thing", "state": "unknown", "attributes": {}, "last_changed": T1},
            {"entity_id": "sun.sun", "state": "above_horizon", "attributes": {}, "last_changed": T1},
        ],
    }


ANALYTICS_CHECKS = [
    analytics_checks.overview_counts_match_the_mirror,
    analytics_checks.overview_percentages_are_in_range,
    analytics_checks.availability_is_consistent,
    analytics_checks.integration_health_counts_every_entry,
    analytics_checks.area_summary_counts_everything_once,
    analytics_checks.device_names_are_resolved,
]


@pytest.fixture
def synced(db_url: str):
    """The small home, synced through Dagster: registry assets, then analytics, then their checks."""
    with FakeHomeAssistant(small_home(), token=TOKEN) as server:
        result = dg.materialize(
            [ha_assets.home_assistant_mirror, analytics_assets.home_analytics, *ANALYTICS_CHECKS],
            resources={"home_assistant": one_home(server.url, TOKEN), "mirror": MirrorDatabase(url=db_url)},
            partition_key=HOME,
        )
    assert result.success
    return result, sa.create_engine(db_url)


def rows(engine: sa.Engine, table: str, order: str) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        found = connection.execute(sa.text(f"SELECT * FROM {table} ORDER BY {order}")).mappings().all()
    return [{k: v for k, v in row.items() if k not in ("instance", "id")} for row in found]


def test_analytics_materialize_after_the_registry_assets_with_previews(synced) -> None:
    result, _ = synced
    materialized = [m.asset_key.to_user_string() for m in result.get_asset_materialization_events()]
    assert materialized.index("home_overview") > materialized.index("ha_states")
    overview = next(m for m in result.get_asset_materialization_events() if m.asset_key.to_user_string() == "integration_health")
    assert overview.materialization.metadata["dagster/row_count"].value == 4
    assert "| hue " in overview.materialization.metadata["preview"].value
    assert all(e.passed for e in result.get_asset_check_evaluations()), [
        (e.check_name, e.metadata) for e in result.get_asset_check_evaluations() if not e.passed
    ]


def test_home_overview(synced) -> None:
    (row,) = rows(synced[1], "analytics_home_overview", "id")
    assert row["synced_at"] is not None and row["sync_run_id"] == 1
    del row["synced_at"], row["sync_run_id"]
    assert row == {
        "ha_version": "2025.4.4", "devices": 4, "entities": 5, "entities_enabled": 4, "entities_disabled": 1,
        "areas": 2, "floors": 1, "integrations": 4, "integrations_loaded": 1, "integration_health_pct": 25.0,
        "entities_with_state": 5, "unavailable_entities": 2, "unknown_entities": 1, "availability_pct": 60.0,
    }


def test_home_overview_appends_one_row_per_sync(db_url: str) -> None:
    with FakeHomeAssistant(small_home(), token=TOKEN) as server:
        resources = {"home_assistant": one_home(server.url, TOKEN), "mirror": MirrorDatabase(url=db_url)}
        for _ in range(3):
            dg.materialize(
                [ha_assets.home_assistant_mirror, analytics_assets.home_analytics], resources=resources, partition_key=HOME
            )
    engine = sa.create_engine(db_url)
    assert [r["sync_run_id"] for r in rows(engine, "analytics_home_overview", "id")] == [1, 2, 3]
    assert len(rows(engine, "analytics_device_inventory", "device_id")) == 4  # replaced, not appended


def test_health_is_null_not_zero_when_there_is_nothing_to_divide(db_url: str) -> None:
    empty = {**small_home(), "config_entries/get": [], "get_states": []}
    with FakeHomeAssistant(empty, token=TOKEN) as server:
        dg.materialize(
            [ha_assets.home_assistant_mirror, analytics_assets.home_analytics],
            resources={"home_assistant": one_home(server.url, TOKEN), "mirror": MirrorDatabase(url=db_url)},
            partition_key=HOME,
        )
    (row,) = rows(sa.create_engine(db_url), "analytics_home_overview", "id")
    assert row["integration_health_pct"] is None and row["availability_pct"] is None
    assert row["integrations"] == 0


def test_integration_health(synced) -> None:
    found = rows(synced[1], "analytics_integration_health", "rank")
    zero = {"entries_loaded": 0, "entries_setup_error": 0, "entries_setup_retry": 0, "entries_not_loaded": 0,
            "entries_failed_unload": 0, "entries_migration_error": 0, "entries_other": 0}
    assert found == [
        {"rank": 1, "domain": "hue", "config_entries": 1, **zero, "entries_loaded": 1, "devices": 2, "entities": 2,
         "unavailable_entities": 1, "healthy": True, "reason": "all 1 enabled config entries loaded"},
        {"rank": 2, "domain": "cast", "config_entries": 1, **zero, "entries_setup_error": 1, "devices": 1, "entities": 1,
         "unavailable_entities": 0, "healthy": False, "reason": "1 of 1 enabled config entries not loaded: 1 setup_error"},
        {"rank": 3, "domain": "zwave_js", "config_entries": 2, **zero, "entries_setup_retry": 1, "entries_not_loaded": 1,
         "devices": 1, "entities": 1, "unavailable_entities": 1, "healthy": False,
         "reason": "1 of 1 enabled config entries not loaded: 1 setup_retry"},
        {"rank": 4, "domain": "template", "config_entries": 0, **zero, "devices": 0, "entities": 1,
         "unavailable_entities": 0, "healthy": None, "reason": "no config entry (set up in YAML)"},
    ]


def test_device_inventory(synced) -> None:
    found = {row["device_id"]: row for row in rows(synced[1], "analytics_device_inventory", "name")}
    assert [row["name"] for row in found.values()] == ["Hue bridge", "Kitchen lamp", "Stick", "TV"]
    assert found["d1"] == {
        "device_id": "d1", "name": "Hue bridge", "manufacturer": "Signify", "model": "BSB002", "sw_version": "1.60",
        "area_id": "kitchen",
        "area_name": "Kitchen", "floor_name": "Ground", "integration": "hue", "integration_title": "Hue",
        "via_device_id": None, "via_device_name": None, "entities": 1, "unavailable_entities": 1,
        "disabled": False, "disabled_by": None,
    }
    assert (found["d2"]["via_device_id"], found["d2"]["via_device_name"]) == ("d1", "Hue bridge")
    assert (found["d3"]["integration"], found["d3"]["area_name"], found["d3"]["unavailable_entities"]) == ("zwave_js", None, 1)
    assert (found["d4"]["integration_title"], found["d4"]["floor_name"], found["d4"]["disabled"]) == ("Cast", None, True)


def test_entity_availability_and_the_unavailable_list(synced) -> None:
    found = rows(synced[1], "analytics_entity_availability", "domain, integration")
    assert [(r["domain"], r["integration"], r["entities"], r["unavailable"], r["unknown"], r["availability_pct"]) for r in found] == [
        ("light", "hue", 1, 0, 0, 100.0),
        ("sensor", "hue", 1, 1, 0, 0.0),
        ("sensor", "template", 1, 0, 1, 100.0),
        ("sun", "(no registry entry)", 1, 0, 0, 100.0),
        ("switch", "zwave_js", 1, 1, 0, 0.0),
    ]
    assert rows(synced[1], "analytics_unavailable_entities", "entity_id") == [
        {"entity_id": "sensor.bridge_temp", "integration": "hue", "device_id": "d1", "device_name": "Hue bridge",
         "area_id": "office", "area_name": "Office", "unavailable_since": T1},
        {"entity_id": "switch.stick_relay", "integration": "zwave_js", "device_id": "d3", "device_name": "Stick",
         "area_id": None, "area_name": None, "unavailable_since": T2},
    ]


def test_area_summary_uses_the_effective_area(synced) -> None:
    found = rows(synced[1], "analytics_area_summary", "area_name")
    assert [(r["area_name"], r["floor_name"], r["devices"], r["entities"]) for r in found] == [
        ("(no area)", None, 1, 2),
        ("Kitchen", "Ground", 2, 1),
        ("Office", None, 1, 2),
    ]


def test_the_checks_catch_analytics_that_disagree_with_the_mirror(synced) -> None:
    _, engine = synced
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE analytics_home_overview SET devices = 99, availability_pct = 140"))
        connection.execute(sa.text("DELETE FROM analytics_area_summary WHERE area_name = 'Kitchen'"))
    result = dg.materialize(
        [ha_assets.home_assistant_mirror, analytics_assets.home_analytics, *ANALYTICS_CHECKS],
        selection=dg.AssetSelection.checks(*ANALYTICS_CHECKS),
        resources={"home_assistant": one_home("http://unused", TOKEN),
                   "mirror": MirrorDatabase(url=str(engine.url))},
    )  # checks on their own: they judge every home, here the one
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert failed == {"overview_counts_match_the_mirror", "overview_percentages_are_in_range",
                      "area_summary_counts_everything_once"}
