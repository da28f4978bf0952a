"""Every Home Assistant shape a user may run is mirrored exactly: the recordings of the two real
releases the real tier runs (2025.1.4, 2025.4.4), the 2026.11 shapes derived from HA's 2026.11
source (tests/fixtures/reshape_2026.py), and an unknown future version with fields we have never
seen. The fake HA serves each; the checks are the ones the real tier runs against a live HA."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import sqlalchemy as sa

from homeiq_pipeline import analytics, storage
from homeiq_pipeline.demo.server import load_recording
from homeiq_pipeline.homeassistant import LIST_COMMANDS
from homeiq_pipeline.storage.schema import REGISTRY_TABLES, devices

from .fake_ha import FakeHomeAssistant
from .fixtures import reshape_2026
from .helpers import TOKEN, sync
from .mirror_checks import BY_FIELD, assert_mirror_equals_ha, live_rows

RECORDINGS = ("ha-2025.1.4.json", "ha-2025.4.4.json", "ha-2026.11.0.json")
HA_2026 = "ha-2026.11.0.json"
DEVICES, ENTITIES = "config/device_registry/list", "config/entity_registry/list"


def results_of(recording: str) -> dict[str, Any]:
    return copy.deepcopy(load_recording(recording)["results"])


def mirror(results: dict[str, Any], engine: sa.Engine) -> storage.SyncResult:
    with FakeHomeAssistant(results, token=TOKEN) as server:
        return sync(server, engine)


def test_the_committed_2026_fixture_is_what_the_reshaping_of_the_real_recording_builds() -> None:
    # After re-recording ha-2025.4.4.json, rebuild it: python tests/fixtures/reshape_2026.py
    assert reshape_2026.TARGET.read_text(encoding="utf-8") == reshape_2026.build()


def test_the_2026_fixture_has_the_2026_shapes_the_tests_below_rely_on() -> None:
    """Not vacuous: child devices, one config entry per device, no has_entity_name."""
    results = results_of(HA_2026)
    main = [d for d in results[DEVICES] if d["parent_device_id"] is None]
    children = [d for d in results[DEVICES] if d["parent_device_id"] is not None]
    assert len(children) >= 2 and len(main) > 10
    assert {d["next_name_part"] for d in children} == {"area", "parent_device"}
    assert all("manufacturer" not in d and "config_entries" not in d for d in children)
    assert all(d["config_entries"] == [d["config_entry_id"]] for d in main)
    assert not any("has_entity_name" in e for e in results[ENTITIES])
    assert {e["next_name_part"] for e in results[ENTITIES]} == {"area", "device", None}
    assert any(e["device_id"] in {c["id"] for c in children} for e in results[ENTITIES])


@pytest.mark.parametrize("recording", RECORDINGS)
def test_each_versions_shape_is_stored_field_by_field_with_its_raw_json(recording: str, engine: sa.Engine) -> None:
    results = results_of(recording)
    result = mirror(results, engine)
    assert_mirror_equals_ha(engine, results)  # raw == what HA sent; each column == its field (or NULL)
    assert result.ha_version == results["get_config"]["version"]
    for snapshot_field, command in LIST_COMMANDS.items():
        assert result.counts[BY_FIELD[snapshot_field].name].added == len(results[command]) > 0, command


@pytest.mark.parametrize("recording", RECORDINGS)
def test_every_field_each_known_version_sends_has_a_column(recording: str) -> None:
    """Users query columns: a registry field HA sends that is only in `raw` needs a migration."""
    results = results_of(recording)
    for spec in REGISTRY_TABLES:
        command = LIST_COMMANDS[spec.snapshot_field]
        sent = {field for entry in results[command] for field in entry}
        assert sent - set(spec.fields) == set(), (recording, spec.name)


def test_child_devices_are_stored_with_their_parent_and_only_the_fields_they_have(engine: sa.Engine) -> None:
    results = results_of(HA_2026)
    mirror(results, engine)
    rows = live_rows(engine, devices)
    children = [d for d in results[DEVICES] if d["parent_device_id"] is not None]
    for child in children:
        row = rows[child["id"]]
        assert row["parent_device_id"] == child["parent_device_id"] in rows  # the parent is live too
        assert row["raw"] == child
        assert (row["manufacturer"], row["config_entries"], row["primary_config_entry"]) == (None, None, None)
        assert row["config_entry_id"] == child["config_entry_id"] is not None
        assert row["next_name_part"] == child["next_name_part"]


# The same house as each HA version would send it, as (fields a device lacks, child devices exist):
# 2026.8+ (all fields), after HA removes the deprecated copies (it says 2027.10), 2024.x-2026.7
# (no config_entry_id, no child devices), and before primary_config_entry existed (only the list).
DEVICE_SHAPES: dict[str, tuple[tuple[str, ...], bool]] = {
    "2026.11 as sent": ((), True),
    "config_entry_id only": (("config_entries", "config_entries_subentries", "primary_config_entry"), True),
    "primary_config_entry and config_entries": (
        ("config_entry_id", "config_subentry_id", "next_name_part", "parent_device_id"), False
    ),
    "config_entries only": (
        ("config_entry_id", "config_subentry_id", "next_name_part", "parent_device_id", "primary_config_entry"), False
    ),
}


@pytest.mark.parametrize("shape", DEVICE_SHAPES)
def test_the_analytics_resolve_a_devices_integration_from_whichever_field_it_has(shape: str, engine: sa.Engine) -> None:
    results = results_of(HA_2026)
    domain_of = {entry["entry_id"]: entry["domain"] for entry in results["config_entries/get"]}
    # What HA says: each device's one config entry (in what 2026.11 sends, all fields agree).
    expected = {d["id"]: domain_of[d["config_entry_id"]] for d in results[DEVICES]}
    assert len(set(expected.values())) >= 2  # more than one integration: a mix-up would show
    missing, with_children = DEVICE_SHAPES[shape]
    if not with_children:
        results[DEVICES] = [d for d in results[DEVICES] if d["parent_device_id"] is None]
        expected = {d["id"]: expected[d["id"]] for d in results[DEVICES]}
    for device in results[DEVICES]:
        for field in missing:
            device.pop(field, None)
    mirror(results, engine)
    frames = analytics.refresh_analytics(engine, "home").frames
    inventory = frames["device_inventory"]
    assert dict(zip(inventory["device_id"], inventory["integration"], strict=True)) == expected
    health = frames["integration_health"].set_index("domain")
    for domain in set(expected.values()):
        assert health.loc[domain, "devices"] == sum(1 for d in expected.values() if d == domain)


def test_an_unknown_ha_version_with_extra_missing_and_renamed_fields_still_syncs_and_keeps_them(
    engine: sa.Engine,
) -> None:
    results = results_of(HA_2026)
    results["get_config"]["version"] = "2099.1.0"
    originals = copy.deepcopy(results)
    for device in results[DEVICES]:
        device["matter_node"] = {"fabric": 1, "endpoints": [0, 1]}  # a field no HA has sent yet
        device.pop("name", None)  # missing
        device["user_name"] = device.pop("name_by_user")  # renamed
    for entity in results[ENTITIES]:
        entity["aliases"] = ["a future list"]
        entity["label_ids"] = entity.pop("labels")
        entity.pop("translation_key")
    for area in results["config/area_registry/list"]:
        area["climate_entity_id"] = None
    for state in results["get_states"]:
        state["context"]["origin_event"] = "future"

    first = mirror(results, engine)
    assert first.ha_version == "2099.1.0"
    assert_mirror_equals_ha(engine, results)  # raw keeps every unknown field; gone fields are NULL
    rows = live_rows(engine, devices)
    for before, after in zip(originals[DEVICES], results[DEVICES], strict=True):
        row = rows[after["id"]]
        assert row["raw"]["matter_node"] == {"fabric": 1, "endpoints": [0, 1]}
        assert row["raw"]["user_name"] == before["name_by_user"]
        assert (row["name"], row["name_by_user"]) == (None, None)
    entity_rows = live_rows(engine, BY_FIELD["entities"])
    assert all(row["labels"] is None and row["raw"]["label_ids"] is not None for row in entity_rows.values())

    again = mirror(results, engine)  # the same unknown shape again: nothing is rewritten
    assert {name: counts.written for name, counts in again.counts.items()} == dict.fromkeys(again.counts, 0)
