"""Asset checks on the mirror: references resolve, the home is not mysteriously empty, entity_ids
are unique, and the mirror is fresh. Each checks the run's home (every home outside a sync)."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import sqlalchemy as sa

from ...settings import current
from ...storage.queries import dangling_entity_references, duplicate_live_entity_ids, recent_sync_runs, row_counts
from ..checks import Verdict, mirror_check

SAMPLE = 20  # offenders listed in a check's metadata


@mirror_check("ha_entities", "Every live entity's device_id and area_id name a live device and area.")
def entity_references_are_live(connection: sa.Connection, home: str) -> Verdict:
    dangling = dangling_entity_references(connection, home)
    return not any(dangling.values()), {
        **{f"dangling_{column}": len(ids) for column, ids in dangling.items()},
        **{f"sample_{column}": ", ".join(ids[:SAMPLE]) for column, ids in dangling.items() if ids},
    }


@mirror_check("ha_entities", "No entity_id is held by two live entity registry rows.")
def entity_ids_are_unique(connection: sa.Connection, home: str) -> Verdict:
    duplicates = duplicate_live_entity_ids(connection, home)
    return not duplicates, {"duplicates": len(duplicates), "sample": ", ".join(duplicates[:SAMPLE])}


def _not_empty(connection: sa.Connection, home: str, table: str) -> Verdict:
    """A home with entities or states but no rows in `table` means a read went wrong, not an empty home."""
    counts = row_counts(connection, home)
    home_is_empty = counts["ha_entities"]["live"] == 0 and counts["ha_states"]["live"] == 0
    live = counts[table]["live"]
    return home_is_empty or live > 0, {
        "live_rows": live,
        "live_entities": counts["ha_entities"]["live"],
        "live_states": counts["ha_states"]["live"],
    }


@mirror_check("ha_devices", "A home with entities has devices.")
def devices_are_not_empty(connection: sa.Connection, home: str) -> Verdict:
    return _not_empty(connection, home, "ha_devices")


@mirror_check("ha_config_entries", "A home with entities has integrations (config entries).")
def config_entries_are_not_empty(connection: sa.Connection, home: str) -> Verdict:
    return _not_empty(connection, home, "ha_config_entries")


def freshness_window() -> timedelta:
    return timedelta(hours=current().freshness_hours)


@mirror_check(
    "ha_states",
    "The last successful sync is recent (HA_FRESHNESS_HOURS, default 2). Runs after every sync and every 15 "
    "minutes on its own (for every home), so a mirror that stopped syncing shows as stale.",
)
def mirror_is_fresh(connection: sa.Connection, home: str) -> Verdict:
    window = freshness_window()
    runs = recent_sync_runs(connection, home, limit=1)
    if not runs:
        return False, {"last_sync": "never"}
    finished = runs[0]["finished_at"]
    age = datetime.now(UTC) - finished
    return age <= window, {
        "last_sync": dg.MetadataValue.timestamp(finished),
        "age_minutes": round(age.total_seconds() / 60, 1),
        "allowed_minutes": window.total_seconds() / 60,
    }
