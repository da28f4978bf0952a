"""Points for the optional InfluxDB history: registry and state snapshots tagged with the context
HA's own InfluxDB exporter lacks (area, floor, device, integration). Pure: no network, no Dagster.

Every point of one sync carries that sync's timestamp, so writing them again (a retried run)
overwrites the same series and times instead of adding points.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from influxdb_client import Point, WritePrecision

from .analytics import Mirror, device_inventory, home_overview, latest_picture
from .analytics.compute import resolved
from .storage.schema import registry_changes
from .storage.schema import states as states_table

OVERVIEW_FIELDS = (
    "devices", "entities", "entities_enabled", "entities_disabled", "areas", "floors", "integrations",
    "integrations_loaded", "integration_health_pct", "entities_with_state", "unavailable_entities",
    "unknown_entities", "availability_pct",
)


def _present(value: Any) -> bool:
    return value is not None and value == value  # NaN, pandas' missing value, is not equal to itself


def _point(measurement: str, time: datetime, tags: Mapping[str, Any], fields: Mapping[str, Any]) -> Point:
    point = Point(measurement).time(time, WritePrecision.MS)
    for key, value in tags.items():
        if value is not None and value == value and value != "":
            point.tag(key, str(value))
    for key, value in fields.items():
        if value is not None and value == value:
            point.field(key, value)
    return point


def numeric(state: Any) -> float | None:
    """A state's number, if it is one ("21.5" -> 21.5; "on", "unavailable", "nan" -> None)."""
    try:
        value = float(state)
    except (TypeError, ValueError):
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def device_points(m: Mirror, instance: str, time: datetime) -> Iterator[Point]:
    for device in device_inventory(m).to_dict("records"):
        yield _point(
            "ha_device",
            time,
            {"instance": instance, "device_id": device["device_id"], "manufacturer": device["manufacturer"],
             "model": device["model"], "area": device["area_name"], "floor": device["floor_name"],
             "integration": device["integration"]},
            {"name": device["name"], "disabled": bool(device["disabled"]), "entity_count": int(device["entities"]),
             "unavailable_entities": int(device["unavailable_entities"]), "sw_version": device["sw_version"]},
        )


def entity_points(m: Mirror, classes: pd.DataFrame, instance: str, time: datetime) -> Iterator[Point]:
    """One point per entity with a state (also those without a registry entry). `classes` has each
    state's `device_class` and `unit_of_measurement` attributes (see `state_classes`)."""
    _, entities = resolved(m)
    context = ["entity_id", "integration", "device_id", "area_name", "floor_name", "disabled_by", "hidden_by"]
    states = m.states.merge(entities[context], on="entity_id", how="left").merge(classes, on="entity_id", how="left")
    columns = ["entity_id", "state", *context[1:], "device_class", "unit_of_measurement"]
    # zip over columns: far quicker than DataFrame.to_dict for 50,000 rows
    for entity_id, state, integration, device_id, area, floor, disabled_by, hidden_by, device_class, unit in zip(
        *(states[column] for column in columns), strict=True
    ):
        yield _point(
            "ha_entity",
            time,
            {"instance": instance, "entity_id": entity_id, "domain": entity_id.split(".", 1)[0],
             "integration": integration, "device_id": device_id, "area": area, "floor": floor,
             "device_class": device_class, "unit": unit},
            {"state": state, "value": numeric(state), "available": state != "unavailable",
             "disabled": _present(disabled_by), "hidden": _present(hidden_by)},
        )


def overview_point(overview: Mapping[str, Any], instance: str, time: datetime) -> Point:
    return _point(
        "ha_overview",
        time,
        {"instance": instance, "ha_version": overview.get("ha_version")},
        {name: overview.get(name) for name in OVERVIEW_FIELDS},
    )


def change_points(changes: Iterable[Mapping[str, Any]], instance: str, time: datetime) -> Iterator[Point]:
    """One point per registry row the sync added, updated or removed (rows of ha_registry_changes)."""
    for change in changes:
        for key in change["keys"]:
            yield _point(
                "ha_registry_change",
                time,
                {"instance": instance, "table": change["table_name"], "action": change["action"], "id": key},
                {"changed": 1},
            )


def state_classes(connection: sa.Connection, instance: str) -> pd.DataFrame:
    """Each live state's device_class and unit, picked out of its attributes by the database."""
    table = states_table.table
    query = sa.select(
        table.c.entity_id,
        table.c.attributes["device_class"].as_string().label("device_class"),
        table.c.attributes["unit_of_measurement"].as_string().label("unit_of_measurement"),
    ).where(table.c.instance == instance, table.c.removed_at.is_(None))
    rows = list(map(tuple, connection.execute(query)))  # plain tuples: see analytics.load_mirror
    return pd.DataFrame(rows, columns=["entity_id", "device_class", "unit_of_measurement"])


def history_points(
    m: Mirror,
    classes: pd.DataFrame,
    overview: Mapping[str, Any],
    changes: Iterable[Mapping[str, Any]],
    instance: str,
    time: datetime,
) -> dict[str, list[Point]]:
    """Everything one sync writes to InfluxDB, by measurement, stamped with the sync's time."""
    return {
        "ha_device": list(device_points(m, instance, time)),
        "ha_entity": list(entity_points(m, classes, instance, time)),
        "ha_overview": [overview_point(overview, instance, time)],
        "ha_registry_change": list(change_points(changes, instance, time)),
    }


def latest_sync_points(connection: sa.Connection, instance: str) -> tuple[dict[str, Any], dict[str, list[Point]]]:
    """The points of the instance's latest sync (and that sync run), read from the mirror."""
    run, picture = latest_picture(connection, instance)
    changes = connection.execute(
        sa.select(registry_changes).where(registry_changes.c.sync_run_id == run["id"])
    ).mappings().all()
    overview = home_overview(picture, run).to_dict("records")[0]
    classes = state_classes(connection, instance)
    return run, history_points(picture, classes, overview, changes, instance, run["finished_at"])
