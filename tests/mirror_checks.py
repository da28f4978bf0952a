"""Assertions shared by the fast tier (recorded data) and the real-HA tier (a live Home Assistant):
the mirror must equal what HA reports, field by field."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from homeiq_pipeline.homeassistant import LIST_COMMANDS
from homeiq_pipeline.storage.schema import MIRRORED_TABLES, MirroredTable

BY_FIELD = {spec.snapshot_field: spec for spec in MIRRORED_TABLES}


def live_rows(engine: sa.Engine, spec: MirroredTable, instance: str = "home") -> dict[str, dict[str, Any]]:
    table = spec.table
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(table).where(table.c.instance == instance, table.c.removed_at.is_(None))
        ).mappings()
        return {row[spec.key]: dict(row) for row in rows}


def all_rows(engine: sa.Engine, spec: MirroredTable) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(sa.select(spec.table)).mappings()]


def assert_mirror_equals_ha(engine: sa.Engine, results: dict[str, Any], instance: str = "home") -> None:
    """Every entry HA lists is live with HA's values, field by field; nothing else is live."""
    for snapshot_field, command in LIST_COMMANDS.items():
        spec = BY_FIELD[snapshot_field]
        entries = {entry[spec.key]: entry for entry in results[command]}
        rows = live_rows(engine, spec, instance)
        assert rows.keys() == entries.keys(), spec.name
        for key, entry in entries.items():
            row = rows[key]
            assert row["raw"] == entry, (spec.name, key)
            for field in spec.fields:
                assert row[field] == entry.get(field), (spec.name, key, field)


