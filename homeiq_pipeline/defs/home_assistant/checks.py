"""Asset checks on the mirror: references resolve, the home is not mysteriously empty, entity_ids
are unique, and the mirror is fresh."""


import os
from datetime import UTC, datetime, timedelta

import dagster as dg

from ...storage.queries import dangling_entity_references, duplicate_live_entity_ids, recent_sync_runs, row_counts
from ..resources import HomeAssistantResource, MirrorDatabase

SAMPLE = 20  # offenders listed in a check's metadata


@dg.asset_check(asset="ha_entities", description="Every live entity's device_id and area_id name a live device and area.")
def entity_references_are_live(home_assistant: HomeAssistantResource, mirror: MirrorDatabase) -> dg.AssetCheckResult:
    with mirror.engine.connect() as connection:
        dangling = dangling_entity_references(connection, home_assistant.instance)
    return dg.AssetCheckResult(
        passed=not any(dangling.values()),
        metadata={
            **{f"dangling_{column}": len(ids) for column, ids in dangling.items()},
            **{f"sample_{column}": ", ".join(ids[:SAMPLE]) for column, ids in dangling.items() if ids},
        },
    )


@dg.asset_check(asset="ha_entities", description="No entity_id is held by two live entity registry rows.")
def entity_ids_are_unique(home_assistant: HomeAssistantResource, mirror: MirrorDatabase) -> dg.AssetCheckResult:
    with mirror.engine.connect() as connection:
        duplicates = duplicate_live_entity_ids(connection, home_assistant.instance)
    return dg.AssetCheckResult(
        passed=not duplicates,
        metadata={"duplicates": len(duplicates), "sample": ", ".join(duplicates[:SAMPLE])},
    )


def _not_empty(table: str, home_assistant: HomeAssistantResource, mirror: MirrorDatabase) -> dg.AssetCheckResult:
    """A home with entities or states but no rows in `table` means a read went wrong, not an empty home."""
    with mirror.engine.connect() as connection:
        counts = row_counts(connection, home_assistant.instance)
    home_is_empty = counts["ha_entities"]["live"] == 0 and counts["ha_states"]["live"] == 0
    live = counts[table]["live"]
    return dg.AssetCheckResult(
        passed=home_is_empty or live > 0,
        metadata={"live_rows": live, "live_entities": counts["ha_entities"]["live"], "live_states": counts["ha_states"]["live"]},
    )


@dg.asset_check(asset="ha_devices", description="A home with entities has devices.")
def devices_are_not_empty(home_assistant: HomeAssistantResource, mirror: MirrorDatabase) -> dg.AssetCheckResult:
    return _not_empty("ha_devices", home_assistant, mirror)


@dg.asset_check(asset="ha_config_entries", description="A home with entities has integrations (config entries).")
def config_entries_are_not_empty(home_assistant: HomeAssistantResource, mirror: MirrorDatabase) -> dg.AssetCheckResult:
    return _not_empty("ha_config_entries", home_assistant, mirror)


def freshness_window() -> timedelta:
    return timedelta(hours=float(os.environ.get("HA_FRESHNESS_HOURS") or 2))


@dg.asset_check(
    asset="ha_states",
    description="The last successful sync is recent (HA_FRESHNESS_HOURS, default 2). Runs after every "
    "sync and every 15 minutes on its own, so a mirror that stopped syncing shows as stale.",
)
def mirror_is_fresh(home_assistant: HomeAssistantResource, mirror: MirrorDatabase) -> dg.AssetCheckResult:
    with mirror.engine.connect() as connection:
        runs = recent_sync_runs(connection, home_assistant.instance, limit=1)
    window = freshness_window()
    if not runs:
        return dg.AssetCheckResult(passed=False, metadata={"last_sync": "never"})
    finished = runs[0]["finished_at"]
    age = datetime.now(UTC) - finished
    return dg.AssetCheckResult(
        passed=age <= window,
        metadata={
            "last_sync": dg.MetadataValue.timestamp(finished),
            "age_minutes": round(age.total_seconds() / 60, 1),
            "allowed_minutes": window.total_seconds() / 60,
        },
    )
