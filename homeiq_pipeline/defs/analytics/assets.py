"""Analytics assets: computed with pandas from the mirror right after each sync, one table each."""

import dagster as dg
import pandas as pd

from ... import analytics
from ...storage.derived import write_analytics
from ...storage.queries import recent_sync_runs
from ...storage.schema import ANALYTICS_TABLES, MIRRORED_TABLES
from ..resources import HomeAssistantResource, MirrorDatabase, mirror_kind

GROUP = "analytics"

DESCRIPTIONS = {
    "home_overview": "One row per sync (a history): devices, entities, areas, floors, integrations and "
    "their health, availability.",
    "integration_health": "One row per integration domain: config entries by state, devices, entities, "
    "unavailable entities, healthy or not and why. Ranked by devices: its head is the top integrations.",
    "device_inventory": "One row per live device, names resolved: area, floor, integration, via device, "
    "entity counts.",
    "entity_availability": "Entities with a state per domain and integration: unavailable, unknown, availability %.",
    "unavailable_entities": "Every entity whose state is unavailable, with its device, area and since when.",
    "area_summary": "One row per area (and one for no area): floor, devices, entities (effective area).",
}
HISTORY = ("home_overview",)  # appended each sync; the others are replaced


@dg.multi_asset(
    name="home_analytics",
    specs=[
        dg.AssetSpec(
            key=name,
            group_name=GROUP,
            description=DESCRIPTIONS[name],
            deps=[spec.name for spec in MIRRORED_TABLES],
            kinds={"pandas", mirror_kind()},
            metadata={"dagster/table_name": table.name},
        )
        for name, table in ANALYTICS_TABLES.items()
    ],
    description="Read the mirror once and compute every analytics table from the same picture.",
)
def home_analytics(context: dg.AssetExecutionContext, home_assistant: HomeAssistantResource, mirror: MirrorDatabase):
    instance = home_assistant.instance
    with mirror.engine.connect() as connection:
        runs = recent_sync_runs(connection, instance, limit=1)
        if not runs:
            raise dg.Failure(f"the mirror has no sync of instance {instance!r} yet: run sync_home_assistant first")
        picture = analytics.load_mirror(connection, instance)
    frames = {
        "home_overview": analytics.home_overview(picture, runs[0]),
        "integration_health": analytics.integration_health(picture),
        "device_inventory": analytics.device_inventory(picture),
        "entity_availability": analytics.entity_availability(picture),
        "unavailable_entities": analytics.unavailable_entities(picture),
        "area_summary": analytics.area_summary(picture),
    }
    frames["integration_health"].insert(0, "rank", range(1, len(frames["integration_health"]) + 1))
    write_analytics(
        mirror.engine,
        instance,
        replace={name: frame for name, frame in frames.items() if name not in HISTORY},
        append={name: frames[name] for name in HISTORY},
    )
    for name, frame in frames.items():
        yield dg.MaterializeResult(
            asset_key=name,
            metadata={
                "dagster/row_count": len(frame),
                "instance": instance,
                "sync_run_id": runs[0]["id"],
                "preview": dg.MetadataValue.md(_markdown(frame.head(10))),
            },
        )


def _markdown(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False) if len(frame) else "_no rows_"
