"""A sync of a real Home Assistant stores exactly what HA reports: the fast tier's checks, live."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from homeiq_pipeline import storage
from homeiq_pipeline.homeassistant import LIST_COMMANDS
from homeiq_pipeline.storage.schema import config_entries, entities, states

from ..mirror_checks import BY_FIELD, live_rows
from .helpers import (
    REGISTRY_TABLES,
    RealHomeAssistant,
    assert_mirror_equals_live_ha,
    assert_registries_unchanged,
    command,
    sync,
)

pytestmark = pytest.mark.real_ha


def test_a_sync_stores_every_registry_entry_and_state_exactly_as_ha_reports_them(
    ha: RealHomeAssistant, engine: sa.Engine, ha_version: str
) -> None:
    snapshot, result = sync(ha, engine)
    fresh = assert_mirror_equals_live_ha(engine, ha, snapshot)
    for snapshot_field, command in LIST_COMMANDS.items():
        table = BY_FIELD[snapshot_field].name
        # Every row is new in a fresh mirror; HA's own count, not a number we remember.
        assert result.counts[table].added == result.counts[table].live == len(fresh[command]), table
    for table in ("ha_devices", "ha_entities", "ha_areas", "ha_config_entries", "ha_states"):
        assert result.counts[table].live > 0, f"{table}: the demo house has some, a vacuous check otherwise"
    with engine.connect() as connection:
        run = connection.execute(sa.select(storage.sync_runs)).mappings().one()
    assert run["outcome"] == "success"
    assert run["ha_version"] == fresh["get_config"]["version"] == ha_version
    assert run["location_name"] == fresh["get_config"]["location_name"]
    assert run["counts"] == {name: counts.as_dict() for name, counts in result.counts.items()}


def test_integrations_are_counted_from_the_config_entries_ha_lists(ha: RealHomeAssistant, engine: sa.Engine) -> None:
    sync(ha, engine)
    listed = command(ha, "config_entries/get")
    rows = live_rows(engine, config_entries)
    assert len(rows) == len(listed) > 0
    assert {"demo", "kitchen_sink"} <= {row["domain"] for row in rows.values()}
    assert {key: row["state"] for key, row in rows.items()} == {e["entry_id"]: e["state"] for e in listed}


def test_a_resync_of_an_unchanged_home_rewrites_no_registry_row(ha: RealHomeAssistant, engine: sa.Engine) -> None:
    sync(ha, engine)
    snapshot, result = sync(ha, engine)
    assert_registries_unchanged(result)
    assert all(result.counts[t].unchanged == result.counts[t].live for t in REGISTRY_TABLES)
    assert_mirror_equals_live_ha(engine, ha, snapshot)


def test_the_real_home_is_mirrored_with_its_untidy_parts(ha: RealHomeAssistant, engine: sa.Engine) -> None:
    """What real homes have and a tidy mirror might drop: all of it is kept."""
    sync(ha, engine)
    entity_rows = live_rows(engine, entities)
    state_rows = live_rows(engine, states)
    registered = {row["entity_id"] for row in entity_rows.values()}
    assert any(row["device_id"] is None for row in entity_rows.values())  # entities without a device
    assert any(row["disabled_by"] == "integration" for row in entity_rows.values())
    assert any(entity_id not in registered for entity_id in state_rows)  # states without an entry
