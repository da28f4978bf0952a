"""Nothing is lost across our own upgrades: a field HA sent before it had a column is kept in `raw`,
and the migration that makes it a column (0003: HA 2026's new registry fields) fills that column
from `raw` for every row, live or removed. Later syncs fill it for new and changed rows."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from homeiq_pipeline import storage
from homeiq_pipeline.demo.server import load_recording
from homeiq_pipeline.storage import sync as sync_module
from homeiq_pipeline.storage.database import _alembic_config, create_engine, current_revision, head_revision
from homeiq_pipeline.storage.schema import MIRRORED_BY_NAME, MIRRORED_TABLES, MirroredTable

from .fake_ha import FakeHomeAssistant
from .helpers import TOKEN, sync
from .mirror_checks import all_rows, assert_mirror_equals_ha

NEW_COLUMNS = {  # what 0003 adds
    "ha_devices": ("config_subentry_id", "next_name_part"),
    "ha_entities": ("next_name_part",),
    "ha_config_entries": ("error_reason_translation_domain",),
}
ENTITIES = "config/entity_registry/list"


def mirror(results: dict[str, Any], engine: sa.Engine) -> storage.SyncResult:
    with FakeHomeAssistant(results, token=TOKEN) as server:
        return sync(server, engine)


def ha_2026_results() -> dict[str, Any]:
    """The 2026.11 fixture, with one config entry failing (so its error's translation domain is set)
    and one device in a config subentry (the demo has none)."""
    results = copy.deepcopy(load_recording("ha-2026.11.0.json")["results"])
    failing = results["config_entries/get"][0]
    failing.update(state="setup_retry", reason="Device not ready", error_reason_translation_domain=failing["domain"],
                   error_reason_translation_key="not_ready")
    device = results["config/device_registry/list"][0]
    subentry = "01JHOMEIQSUBENTRY000000001"
    device.update(config_subentry_id=subentry, config_entries_subentries={device["config_entry_id"]: [subentry]})
    return results


def tables_as_of(engine: sa.Engine) -> dict[str, MirroredTable]:
    """The mirrored tables with only the columns the database has now (today's column types)."""
    inspector = sa.inspect(engine)
    specs = {}
    for spec in MIRRORED_TABLES:
        present = {column["name"] for column in inspector.get_columns(spec.name)}
        table = sa.Table(
            spec.name,
            sa.MetaData(),
            *(sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
              for c in spec.table.columns if c.name in present),
        )
        fields = {name: kind for name, kind in spec.fields.items() if name in present}
        specs[spec.name] = MirroredTable(table, spec.snapshot_field, spec.key, fields)
    return specs


@pytest.fixture
def synced_at_0002(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A database at 0002 that synced HA 2026 payloads twice (the second sync removed an entity),
    written by the sync as it was then: the same code, with 0002's columns. Yields the payloads."""
    engine = create_engine(db_url)
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), "0002")
    old = tables_as_of(engine)
    for table, columns in NEW_COLUMNS.items():
        assert not set(columns) & set(old[table].fields), table  # really not columns yet
    with monkeypatch.context() as patched:
        patched.setattr(sync_module, "MIRRORED_TABLES", tuple(old.values()))
        patched.setattr(sync_module, "REGISTRY_TABLES", tuple(s for n, s in old.items() if n != "ha_states"))
        patched.setattr(sync_module, "GUARDED_TABLES", (old["ha_devices"], old["ha_entities"]))
        results = ha_2026_results()
        mirror(results, engine)
        gone = next(e for e in results[ENTITIES] if e["next_name_part"] == "area")
        results[ENTITIES].remove(gone)
        removed = mirror(results, engine)
        assert removed.counts["ha_entities"].removed == 1, gone["entity_id"]
    engine.dispose()
    yield results


def test_0003_fills_the_new_columns_from_raw_for_every_row_live_or_removed(
    db_url: str, synced_at_0002: dict[str, Any]
) -> None:
    upgraded = storage.open_database(db_url)
    with upgraded.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), storage.metadata) == []
    assert current_revision(upgraded) == head_revision()
    for table, columns in NEW_COLUMNS.items():
        rows = all_rows(upgraded, MIRRORED_BY_NAME[table])
        for column in columns:
            assert [row[column] for row in rows] == [row["raw"].get(column) for row in rows], (table, column)
            assert any(row[column] is not None for row in rows), (table, column)  # not vacuous
    removed = [row for row in all_rows(upgraded, MIRRORED_BY_NAME["ha_entities"]) if row["removed_at"] is not None]
    assert len(removed) == 1 and removed[0]["next_name_part"] == removed[0]["raw"]["next_name_part"] is not None
    # Everything else is as the sync at 0002 left it, column by column.
    assert_mirror_equals_ha(upgraded, synced_at_0002)
    upgraded.dispose()


def test_after_0003_later_syncs_fill_the_new_columns_and_rewrite_only_changed_rows(
    db_url: str, synced_at_0002: dict[str, Any]
) -> None:
    upgraded = storage.open_database(db_url)
    results = copy.deepcopy(synced_at_0002)
    entity = next(e for e in results[ENTITIES] if e["area_id"] is None and e["device_id"] is not None)
    assert entity["next_name_part"] == "device"
    area = results["config/area_registry/list"][0]["area_id"]
    entity.update(area_id=area, next_name_part="area")  # what 2026.11 sends once it is placed in an area
    result = mirror(results, upgraded)
    assert (result.counts["ha_entities"].updated, result.counts["ha_devices"].written) == (1, 0)
    assert_mirror_equals_ha(upgraded, results)  # the changed row by the sync, the others by 0003
    upgraded.dispose()
