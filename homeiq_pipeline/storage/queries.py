"""Read-only questions about the mirror, for the CLI and Dagster metadata."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .schema import MIRRORED_TABLES, sync_runs


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


def recent_sync_runs(connection: sa.Connection, instance: str, limit: int = 5) -> list[dict[str, Any]]:
    """The newest sync runs of one instance, newest first."""
    rows = connection.execute(
        sa.select(sync_runs).where(sync_runs.c.instance == instance).order_by(sync_runs.c.id.desc()).limit(limit)
    )
    return [dict(row._mapping) for row in rows]
