"""The registry assets: one per mirrored table, all produced from ONE snapshot per run, so every
run stores one consistent picture of Home Assistant."""

import time

import dagster as dg
import pandas as pd
from pydantic import Field

from ... import storage
from ...names import HOME_ASSISTANT_GROUP, POOL
from ...storage.queries import preview_rows
from ...storage.schema import MIRRORED_TABLES, MirroredTable
from ..partitions import HOMES, run_home
from ..resources import MirrorDatabase, mirror_kind
from .resources import HomeAssistantResource
from .retries import fetch_trying_again

DESCRIPTIONS = {
    "ha_devices": "Home Assistant's device registry (config/device_registry/list), keyed by device id.",
    "ha_entities": "Home Assistant's entity registry (config/entity_registry/list), keyed by the "
    "registry's stable id: a renamed entity_id updates the same row.",
    "ha_areas": "Home Assistant's areas (config/area_registry/list).",
    "ha_floors": "Home Assistant's floors (config/floor_registry/list).",
    "ha_labels": "Home Assistant's labels (config/label_registry/list).",
    "ha_config_entries": "Home Assistant's integrations: its config entries (config_entries/get), "
    "with their state (loaded, setup_error, ...).",
    "ha_states": "The current state of every entity (get_states), keyed by entity_id.",
}


class SyncConfig(dg.Config):
    force: bool = False
    """Store the snapshot even if it would mark most devices or entities as removed."""
    tries: int = Field(default=4, ge=1)
    """Connections to an unreachable (or starting) Home Assistant before the run fails: HA restarting
    is often brief. A rejected token, an untrusted certificate or an unusable answer fail at once."""
    first_pause_seconds: float = Field(default=10.0, ge=0)
    """Pause after the first failed try, doubling after each next one (10, 20, 40 s)."""


def _column_schema(spec: MirroredTable) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(column.name, str(column.type).lower()) for column in spec.table.columns]
    )


def _asset_spec(spec: MirroredTable) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=spec.name,
        group_name=HOME_ASSISTANT_GROUP,
        description=DESCRIPTIONS[spec.name],
        kinds={"homeassistant", mirror_kind()},
        metadata={"dagster/table_name": spec.name, "dagster/column_schema": _column_schema(spec)},
    )


@dg.multi_asset(
    name="home_assistant_mirror",
    specs=[_asset_spec(spec) for spec in MIRRORED_TABLES],
    partitions_def=HOMES,
    pool=POOL,
    description="Fetch one snapshot of one Home Assistant (the partition) over its websocket API and "
    "store it in the mirror in one transaction.",
)
def home_assistant_mirror(
    context: dg.AssetExecutionContext, config: SyncConfig, home_assistant: HomeAssistantResource, mirror: MirrorDatabase
):
    home = run_home(context)
    started = time.monotonic()
    snapshot = fetch_trying_again(
        lambda: home_assistant.client(home),
        tries=config.tries,
        first_pause=config.first_pause_seconds,
        log=context.log.warning,
    )
    try:
        result = storage.sync_snapshot(mirror.engine, snapshot, instance=home, force=config.force)
    except storage.DataLossRefused as exc:
        raise dg.Failure(
            f"{exc} (in Dagster: launch the job with config force: true)",
            metadata={"cause": "data-loss guard"},
            allow_retries=False,
        ) from None  # expected failures: the description says it all, without a stack trace under it
    except storage.StorageError as exc:
        raise dg.Failure(str(exc), metadata={"cause": "refused"}, allow_retries=False) from None
    seconds = time.monotonic() - started
    context.log.info(
        f"synced Home Assistant {result.ha_version} ({result.location_name}) as sync run {result.run_id} "
        f"in {seconds:.2f} s: {result.rows_written} rows written"
    )
    with storage.read_snapshot(mirror.engine) as connection:
        for spec in MIRRORED_TABLES:
            counts = result.counts[spec.name]
            preview = pd.DataFrame(preview_rows(connection, spec.name, home))
            yield dg.MaterializeResult(
                asset_key=spec.name,
                metadata={
                    "dagster/row_count": counts.live,
                    "added": counts.added,
                    "updated": counts.updated,
                    "removed": counts.removed,
                    "unchanged": counts.unchanged,
                    "ha_version": result.ha_version,
                    "ha_location_name": result.location_name or "",
                    "instance": result.instance,
                    "sync_run_id": result.run_id,
                    "duration_seconds": round(seconds, 3),
                    "preview": dg.MetadataValue.md(
                        preview.to_markdown(index=False) if not preview.empty else "_no live rows_"
                    ),
                },
            )
