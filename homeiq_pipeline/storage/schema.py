"""The mirror's tables. Their names and columns are a public contract: users write SQL against them.

Columns carry Home Assistant's own field names and values (timestamps as HA sends them: epoch
floats in the registries, ISO strings in states). Every HA column is nullable, because HA adds and
drops fields between releases; the whole entry is also kept in `raw`, so nothing HA sends is lost.

Bookkeeping columns on every mirrored table:
- `instance`: which Home Assistant the row came from (part of the key, so homes can share a database);
- `raw`: the entry exactly as HA sent it; `content_hash`: a 128-bit hash (xxh3) of `raw` with its
  keys sorted, so unchanged rows are never rewritten;
- `first_seen`: the sync that first saw the row; `changed_at`: the last sync that changed it;
- `removed_at`: NULL while HA has the row; set by the first successful sync that no longer has it,
  cleared if it returns. A live row was, by definition, seen by the latest successful sync.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

metadata = sa.MetaData()

# Short names for column types, so each table below reads like HA's payload.
S, F, I, B = sa.Text, sa.Float, sa.BigInteger, sa.Boolean  # noqa: E741 (BIGINT: 64 bits, as in SQLite and JSON)
J = sa.JSON(none_as_null=True)
Timestamp = sa.DateTime(timezone=True)


@dataclass(frozen=True)
class MirroredTable:
    """A table that mirrors one list from HA: its snapshot field, its key and its HA columns."""

    table: sa.Table
    snapshot_field: str
    key: str
    fields: dict[str, sa.types.TypeEngine]

    @property
    def name(self) -> str:
        return self.table.name


def _mirrored(
    name: str, snapshot_field: str, key: str, fields: dict[str, type | sa.types.TypeEngine], *indexes: str
) -> MirroredTable:
    types = {field: (kind() if isinstance(kind, type) else kind) for field, kind in fields.items()}
    table = sa.Table(
        name,
        metadata,
        sa.Column("instance", sa.String(100), primary_key=True),
        sa.Column(key, sa.String(255), primary_key=True),
        *(sa.Column(field, kind, nullable=True) for field, kind in types.items() if field != key),
        sa.Column("raw", J, nullable=False),
        sa.Column("content_hash", sa.String(32), nullable=False),
        sa.Column("first_seen", Timestamp, nullable=False),
        sa.Column("changed_at", Timestamp, nullable=False),
        sa.Column("removed_at", Timestamp, nullable=True),
        *(sa.Index(f"ix_{name}_{column}", "instance", column) for column in indexes),
        # Covers the sync's first question (which keys are live, with which hash), so a sync
        # never reads the wide rows.
        sa.Index(f"ix_{name}_live_hash", "instance", "removed_at", key, "content_hash"),
    )
    return MirroredTable(table, snapshot_field, key, types)


devices = _mirrored(
    "ha_devices",
    "devices",
    "id",
    {
        "id": S,
        "area_id": S,
        "config_entries": J,
        "config_entries_subentries": J,
        "config_entry_id": S,  # HA 2026.8+: one config entry per device
        "config_subentry_id": S,  # HA 2026.8+ (migration 0003)
        "configuration_url": S,
        "connections": J,
        "created_at": F,
        "disabled_by": S,
        "entry_type": S,
        "hw_version": S,
        "identifiers": J,
        "labels": J,
        "manufacturer": S,
        "model": S,
        "model_id": S,
        "modified_at": F,
        "name": S,
        "name_by_user": S,
        "next_name_part": S,  # HA 2026.11+: "area" or null (child devices: or "parent_device") (migration 0003)
        "parent_device_id": S,  # HA 2026.8+: child devices
        "primary_config_entry": S,
        "serial_number": S,
        "sw_version": S,
        "via_device_id": S,
    },
)

entities = _mirrored(
    "ha_entities",
    "entities",
    "id",  # the registry's stable id: a renamed entity_id updates the same row
    {
        "id": S,
        "entity_id": S,
        "area_id": S,
        "categories": J,
        "config_entry_id": S,
        "config_subentry_id": S,
        "created_at": F,
        "device_id": S,
        "disabled_by": S,
        "entity_category": S,
        "has_entity_name": B,
        "hidden_by": S,
        "icon": S,
        "labels": J,
        "modified_at": F,
        "name": S,
        "next_name_part": S,  # HA 2026.11+: "area", "device" or null (migration 0003)
        "options": J,
        "original_name": S,
        "platform": S,
        "translation_key": S,
        "unique_id": S,
    },
    "entity_id",
    "device_id",
)

areas = _mirrored(
    "ha_areas",
    "areas",
    "area_id",
    {
        "area_id": S,
        "aliases": J,
        "created_at": F,
        "floor_id": S,
        "humidity_entity_id": S,
        "icon": S,
        "labels": J,
        "modified_at": F,
        "name": S,
        "picture": S,
        "temperature_entity_id": S,
    },
)

floors = _mirrored(
    "ha_floors",
    "floors",
    "floor_id",
    {"floor_id": S, "aliases": J, "created_at": F, "icon": S, "level": I, "modified_at": F, "name": S},
)

labels = _mirrored(
    "ha_labels",
    "labels",
    "label_id",
    {"label_id": S, "color": S, "created_at": F, "description": S, "icon": S, "modified_at": F, "name": S},
)

config_entries = _mirrored(
    "ha_config_entries",
    "config_entries",
    "entry_id",
    {
        "entry_id": S,
        "created_at": F,
        "disabled_by": S,
        "domain": S,
        "error_reason_translation_domain": S,  # HA 2026.x (migration 0003)
        "error_reason_translation_key": S,
        "error_reason_translation_placeholders": J,
        "modified_at": F,
        "num_subentries": I,
        "pref_disable_new_entities": B,
        "pref_disable_polling": B,
        "reason": S,
        "source": S,
        "state": S,
        "supported_subentry_types": J,
        "supports_options": B,
        "supports_reconfigure": B,
        "supports_remove_device": B,
        "supports_unload": B,
        "title": S,
    },
)

states = _mirrored(
    "ha_states",
    "states",
    "entity_id",
    {
        "entity_id": S,
        "state": S,
        "attributes": J,
        "context": J,
        "last_changed": S,
        "last_reported": S,
        "last_updated": S,
    },
)

MIRRORED_TABLES: tuple[MirroredTable, ...] = (devices, entities, areas, floors, labels, config_entries, states)
MIRRORED_BY_NAME: dict[str, MirroredTable] = {spec.name: spec for spec in MIRRORED_TABLES}


def live(table: sa.Table, instance: str) -> sa.ColumnElement[bool]:
    """The where-clause of a mirrored table's live rows of one instance: what HA has now."""
    return sa.and_(table.c.instance == instance, table.c.removed_at.is_(None))


sync_runs = sa.Table(
    "ha_sync_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("instance", sa.String(100), nullable=False),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("finished_at", Timestamp, nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("ha_version", sa.Text),
    sa.Column("location_name", sa.Text),
    sa.Column("forced", sa.Boolean, nullable=False),
    # {"ha_devices": {"added": n, "updated": n, "removed": n, "unchanged": n, "live": n}, ...}
    sa.Column("counts", J, nullable=False),
    sa.Index("ix_ha_sync_runs_instance", "instance", "id"),
)


# What each sync changed in the registries (states change too often to log): an audit trail, and
# the source of the optional InfluxDB change history.
REGISTRY_TABLES: tuple[MirroredTable, ...] = (devices, entities, areas, floors, labels, config_entries)

registry_changes = sa.Table(
    "ha_registry_changes",
    metadata,
    # One row per sync, table and action, listing the keys: a sync that adds 50,000 rows writes
    # one row, not 50,000 (SQLite: json_each(keys); PostgreSQL: json_array_elements_text(keys)).
    sa.Column("sync_run_id", sa.Integer, sa.ForeignKey("ha_sync_runs.id"), primary_key=True),
    sa.Column("table_name", sa.String(40), primary_key=True),
    sa.Column("action", sa.String(10), primary_key=True),  # added | updated | removed
    sa.Column("instance", sa.String(100), nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("keys", J, nullable=False),  # the rows' keys in that table (id, entity registry id, ...)
)


# -- Analytics: derived from the mirror after each sync (homeiq_pipeline.analytics) --------------
# Each table but the overview holds the current picture of each instance, replaced atomically.


def _analytics(name: str, *columns: sa.Column, history: bool = False) -> sa.Table:
    key = [sa.Column("id", sa.Integer, primary_key=True, autoincrement=True)] if history else []
    return sa.Table(
        name,
        metadata,
        *key,
        sa.Column("instance", sa.String(100), nullable=False),
        *columns,
        sa.Index(f"ix_{name}_instance", "instance"),
    )


def _counts(*names: str) -> list[sa.Column]:
    return [sa.Column(name, sa.Integer, nullable=False) for name in names]


def _texts(*names: str) -> list[sa.Column]:
    return [sa.Column(name, sa.Text) for name in names]


home_overview = _analytics(
    "analytics_home_overview",
    sa.Column("sync_run_id", sa.Integer, nullable=False),
    sa.Column("synced_at", Timestamp, nullable=False),
    sa.Column("ha_version", sa.Text),
    *_counts("devices", "entities", "entities_enabled", "entities_disabled"),
    *_counts("areas", "floors", "integrations", "integrations_loaded"),
    sa.Column("integration_health_pct", sa.Float),
    *_counts("entities_with_state", "unavailable_entities", "unknown_entities"),
    sa.Column("availability_pct", sa.Float),
    history=True,
)

integration_health = _analytics(
    "analytics_integration_health",
    sa.Column("rank", sa.Integer, nullable=False),  # 1 = most devices: the "top integrations"
    sa.Column("domain", sa.Text, nullable=False),
    *_counts("config_entries", "entries_loaded", "entries_setup_error", "entries_setup_retry"),
    *_counts("entries_not_loaded", "entries_failed_unload", "entries_migration_error", "entries_other"),
    *_counts("devices", "entities", "unavailable_entities"),
    sa.Column("healthy", sa.Boolean),
    sa.Column("reason", sa.Text),
)

device_inventory = _analytics(
    "analytics_device_inventory",
    sa.Column("device_id", sa.Text, nullable=False),
    *_texts("name", "manufacturer", "model", "sw_version", "area_id"),
    *_texts("area_name", "floor_name", "integration", "integration_title", "via_device_id", "via_device_name"),
    *_counts("entities", "unavailable_entities"),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("disabled_by", sa.Text),
)

entity_availability = _analytics(
    "analytics_entity_availability",
    *_texts("domain", "integration"),
    *_counts("entities", "unavailable", "unknown"),
    sa.Column("availability_pct", sa.Float),
)

unavailable_entities = _analytics(
    "analytics_unavailable_entities",
    *_texts("entity_id", "integration", "device_id", "device_name", "area_id", "area_name", "unavailable_since"),
)

area_summary = _analytics(
    "analytics_area_summary", *_texts("area_id", "area_name", "floor_id", "floor_name"), *_counts("devices", "entities")
)

ANALYTICS_TABLES: dict[str, sa.Table] = {
    table.name.removeprefix("analytics_"): table
    for table in (
        home_overview,
        integration_health,
        device_inventory,
        entity_availability,
        unavailable_entities,
        area_summary,
    )
}
