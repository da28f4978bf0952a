"""Read-only questions about the mirror, for the CLI and Dagster metadata."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from .schema import MIRRORED_BY_NAME, MIRRORED_TABLES, areas, devices, entities, live, sync_runs


def row_counts(connection: sa.Connection, instance: str) -> dict[str, dict[str, int]]:
    """{table: {"live": n, "removed": n}} for one Home Assistant instance."""
    counts: dict[str, dict[str, int]] = {}
    for spec in MIRRORED_TABLES:
        table = spec.table
        live, removed = connection.execute(
            sa.select(
                sa.func.count().filter(table.c.removed_at.is_(None)),
                sa.func.count().filter(table.c.removed_at.is_not(None)),
            ).where(table.c.instance == instance)
        ).one()
        counts[spec.name] = {"live": live, "removed": removed}
    return counts


def recent_sync_runs(
    connection: sa.Connection, instance: str, limit: int = 5, *, outcome: str | None = "success"
) -> list[dict[str, Any]]:
    """The newest sync runs of one instance (of one `outcome`; None: all), newest first; times as
    aware UTC datetimes. Only successful runs describe the mirror: others are running or interrupted."""
    query = sa.select(sync_runs).where(sync_runs.c.instance == instance)
    if outcome is not None:
        query = query.where(sync_runs.c.outcome == outcome)
    rows = connection.execute(query.order_by(sync_runs.c.id.desc()).limit(limit))
    return [{**row._mapping, "started_at": _utc(row.started_at), "finished_at": _utc(row.finished_at)} for row in rows]


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite keeps no time zone


# The columns a person looks at first, per table (for previews).
PREVIEW_COLUMNS: dict[str, tuple[str, ...]] = {
    "ha_devices": ("id", "name_by_user", "name", "manufacturer", "model", "area_id", "disabled_by"),
    "ha_entities": ("entity_id", "platform", "device_id", "area_id", "disabled_by", "hidden_by"),
    "ha_areas": ("area_id", "name", "floor_id"),
    "ha_floors": ("floor_id", "name", "level"),
    "ha_labels": ("label_id", "name", "color", "description"),
    "ha_config_entries": ("entry_id", "domain", "title", "state", "source", "disabled_by"),
    "ha_states": ("entity_id", "state", "last_changed"),
}


def preview_rows(connection: sa.Connection, table_name: str, instance: str, limit: int = 10) -> list[dict[str, Any]]:
    """The first live rows of a table (ordered by key), with its preview columns."""
    spec = MIRRORED_BY_NAME[table_name]
    table = spec.table
    columns = [table.c[name] for name in PREVIEW_COLUMNS[table_name]]
    rows = connection.execute(sa.select(*columns).where(live(table, instance)).order_by(table.c[spec.key]).limit(limit))
    return [dict(row._mapping) for row in rows]


def dangling_entity_references(connection: sa.Connection, instance: str) -> dict[str, list[str]]:
    """Live entities whose device_id or area_id names no live device or area: {column: [entity_id]}."""
    entity = entities.table
    found: dict[str, list[str]] = {}
    for column, target in ((entity.c.device_id, devices), (entity.c.area_id, areas)):
        live_targets = sa.select(target.table.c[target.key]).where(live(target.table, instance))
        rows = connection.execute(
            sa.select(entity.c.entity_id)
            .where(live(entity, instance), column.is_not(None), column.not_in(live_targets))
            .order_by(entity.c.entity_id)
        )
        found[column.name] = [row[0] for row in rows]
    return found


def duplicate_live_entity_ids(connection: sa.Connection, instance: str) -> list[str]:
    """entity_ids held by more than one live entity registry row."""
    entity = entities.table
    rows = connection.execute(
        sa.select(entity.c.entity_id)
        .where(live(entity, instance))
        .group_by(entity.c.entity_id)
        .having(sa.func.count() > 1)
    )
    return [row[0] for row in rows]
