"""Analytics assets: computed with pandas from the mirror right after each sync, one table each."""

import dagster as dg

from ... import analytics
from ...names import ANALYTICS_GROUP
from ...storage.schema import ANALYTICS_TABLES, MIRRORED_TABLES
from ..partitions import HOMES, run_home
from ..resources import MirrorDatabase, mirror_kind

DESCRIPTIONS = {
    "home_overview": "One row per sync (a history): devices, entities, areas, floors, integrations and "
    "their health, availability.",
    "integration_health": "One row per integration domain: config entries by state, devices, entities, "
    "unavailable entities, healthy or not and why. Ranked by devices: its head is the top integrations.",
    "device_inventory": "One row per live device, names resolved: area, floor, integration, via device, entity counts.",
    "entity_availability": "Entities with a state per domain and integration: unavailable, unknown, availability %.",
    "unavailable_entities": "Every entity whose state is unavailable, with its device, area and since when.",
    "area_summary": "One row per area (and one for no area): floor, devices, entities (effective area).",
}


@dg.multi_asset(
    name="home_analytics",
    specs=[
        dg.AssetSpec(
            key=name,
            group_name=ANALYTICS_GROUP,
            description=DESCRIPTIONS[name],
            deps=[spec.name for spec in MIRRORED_TABLES],
            kinds={"pandas", mirror_kind()},
            metadata={"dagster/table_name": table.name},
        )
        for name, table in ANALYTICS_TABLES.items()
    ],
    partitions_def=HOMES,
    description="Read the mirror once and compute every analytics table from the same picture.",
)
def home_analytics(context: dg.AssetExecutionContext, mirror: MirrorDatabase):
    home = run_home(context)
    try:
        refreshed = analytics.refresh_analytics(mirror.engine, home, cache=mirror.pictures)
    except analytics.NoSyncYet as exc:
        raise dg.Failure(str(exc), allow_retries=False) from exc
    for name, frame in refreshed.frames.items():
        yield dg.MaterializeResult(
            asset_key=name,
            metadata={
                "dagster/row_count": len(frame),
                "instance": home,
                "sync_run_id": refreshed.sync_run["id"],
                "preview": dg.MetadataValue.md(frame.head(10).to_markdown(index=False) if len(frame) else "_no rows_"),
            },
        )
