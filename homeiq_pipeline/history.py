"""Points for the optional InfluxDB history: registry and state snapshots tagged with the context
HA's own InfluxDB exporter lacks (area, floor, device, integration). Pure: no network, no Dagster.

Every point of one sync carries that sync's timestamp, so writing them again (a retried run)
overwrites the same series and times instead of adding points.

Points are encoded as line protocol here, by influxdb-client's own rules (a test compares the
two): building 55,000 `Point` objects and serialising them took longer than the sync itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from .analytics import Mirror, PictureCache, device_inventory, home_overview, latest_picture
from .storage.schema import ANALYTICS_TABLES, live, registry_changes
from .storage.schema import states as states_table

# The overview's numbers: every count and percentage of analytics_home_overview.
OVERVIEW_FIELDS = tuple(
    column.name
    for column in ANALYTICS_TABLES["home_overview"].columns
    if isinstance(column.type, sa.Integer | sa.Float) and column.name not in ("id", "sync_run_id")
)


def _present(value: Any) -> bool:
    # NaN and NaT are pandas' missing values.
    return value is not None and value is not pd.NaT and not (isinstance(value, float) and math.isnan(value))


# influxdb-client's escaping (influxdb_client/client/write/point.py)
_ESCAPE_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_ESCAPE_STRING = str.maketrans({'"': r"\"", "\\": r"\\"})


def _field(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        text = str(value)
        return text[:-2] if text.endswith(".0") else text
    return '"' + str(value).translate(_ESCAPE_STRING) + '"'


def _tag(key: str, value: Any) -> str:
    """ ",key=value", escaped; "" for a missing value (None, NaN, "")."""
    if not _present(value) or value == "":
        return ""
    text = str(value).translate(_ESCAPE_KEY)
    return f",{key}={text} " if text.endswith("\\") else f",{key}={text}"  # a trailing backslash would escape the comma


def _tags(key: str, values: Iterable[Any]) -> list[str]:
    """`_tag` of a column; each distinct value is encoded once (areas, domains, units repeat a lot)."""
    encoded: dict[Any, str] = {}
    return [encoded[value] if value in encoded else encoded.setdefault(value, _tag(key, value)) for value in values]


def _point(measurement: str, time_ms: int, tags: Mapping[str, Any], fields: Mapping[str, Any]) -> str:
    """One line of line protocol; missing tags and fields (None, NaN, "", inf) are left out."""
    tag_text = "".join(_tag(key, value) for key, value in sorted(tags.items()))
    field_text = ",".join(
        f"{key}={_field(value)}"
        for key, value in sorted(fields.items())
        if _present(value) and value not in (math.inf, -math.inf)
    )
    return f"{measurement}{tag_text} {field_text} {time_ms}"  # our measurement and key names need no escaping


def numeric(state: Any) -> float | None:
    """A state's number, if it is one ("21.5" -> 21.5; "on", "unavailable", "nan" -> None)."""
    try:
        value = float(state)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def device_points(inventory: pd.DataFrame, instance: str, time: int) -> Iterator[str]:
    """One ha_device point per row of the device inventory (analytics.device_inventory)."""
    for device in inventory.to_dict("records"):
        yield _point(
            "ha_device",
            time,
            {
                "instance": instance,
                "device_id": device["device_id"],
                "manufacturer": device["manufacturer"],
                "model": device["model"],
                "area": device["area_name"],
                "floor": device["floor_name"],
                "integration": device["integration"],
            },
            {
                "name": device["name"],
                "disabled": bool(device["disabled"]),
                "entity_count": int(device["entities"]),
                "unavailable_entities": int(device["unavailable_entities"]),
                "sw_version": device["sw_version"],
            },
        )


def entity_frame(m: Mirror, classes: pd.DataFrame, instance: str) -> pd.DataFrame:
    """Every state with the tags and fields of its ha_entity point (also states without a registry
    entry). `classes` has each state's `device_class` and `unit_of_measurement` attributes."""
    _, entities = m.resolved
    context = ["entity_id", "integration", "device_id", "area_name", "floor_name", "disabled_by", "hidden_by"]
    states = m.states.merge(entities[context], on="entity_id", how="left").merge(classes, on="entity_id", how="left")
    return pd.DataFrame(
        {
            # tags
            "instance": instance,
            "entity_id": states["entity_id"],
            "domain": [entity_id.partition(".")[0] for entity_id in states["entity_id"].tolist()],
            "integration": states["integration"],
            "device_id": states["device_id"],
            "area": states["area_name"],
            "floor": states["floor_name"],
            "device_class": states["device_class"],
            "unit": states["unit_of_measurement"],
            # fields
            "state": states["state"],
            "value": [numeric(state) for state in states["state"]],
            "available": states["state"] != "unavailable",
            "disabled": states["disabled_by"].notna(),
            "hidden": states["hidden_by"].notna(),
        }
    )


ENTITY_TAGS = ("area", "device_class", "device_id", "domain", "entity_id", "floor", "instance", "integration", "unit")


def entity_points(m: Mirror, classes: pd.DataFrame, instance: str, time: int) -> list[str]:
    """The ha_entity lines, built a column at a time: the same text as `_point` (a test checks),
    several times faster for 50,000 states."""
    frame = entity_frame(m, classes, instance)
    columns = [_tags(key, frame[key].tolist()) for key in ENTITY_TAGS]  # sorted, as `_point` does
    flags = {
        key: ["true" if flag else "false" for flag in frame[key].tolist()]
        for key in ("available", "disabled", "hidden")
    }
    fields = [
        f' available={available},disabled={disabled},hidden={hidden},state="{str(state).translate(_ESCAPE_STRING)}"'
        + (f",value={_field(value)}" if _present(value) else "")
        + f" {time}"
        for available, disabled, hidden, state, value in zip(
            flags["available"],
            flags["disabled"],
            flags["hidden"],
            frame["state"].tolist(),
            frame["value"].tolist(),
            strict=True,
        )
    ]
    return ["ha_entity" + "".join(parts) for parts in zip(*columns, fields, strict=True)]


def overview_point(overview: Mapping[str, Any], instance: str, time: int) -> str:
    return _point(
        "ha_overview",
        time,
        {"instance": instance, "ha_version": overview.get("ha_version")},
        {name: overview.get(name) for name in OVERVIEW_FIELDS},
    )


def change_points(changes: Iterable[Mapping[Any, Any]], instance: str, time: int) -> Iterator[str]:
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
    ).where(live(table, instance))
    rows = list(map(tuple, connection.execute(query)))  # plain tuples: see analytics.load_mirror
    return pd.DataFrame(rows, columns=["entity_id", "device_class", "unit_of_measurement"])


def history_points(
    m: Mirror,
    *,
    inventory: pd.DataFrame,
    classes: pd.DataFrame,
    overview: Mapping[str, Any],
    changes: Iterable[Mapping[Any, Any]],
    instance: str,
    time: int,
) -> dict[str, list[str]]:
    """Everything one sync writes to InfluxDB, by measurement, stamped with the sync's time."""
    return {
        "ha_device": list(device_points(inventory, instance, time)),
        "ha_entity": entity_points(m, classes, instance, time),
        "ha_overview": [overview_point(overview, instance, time)],
        "ha_registry_change": list(change_points(changes, instance, time)),
    }


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, exact (no float rounding)."""
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def latest_sync_points(
    connection: sa.Connection, instance: str, cache: PictureCache | None = None
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The points of the instance's latest sync (and that sync run), read from the mirror. With the
    run's `cache`, the picture and tables the analytics computed from it are reused, not rebuilt."""
    run, picture = latest_picture(connection, instance, cache)
    changes = (
        connection.execute(sa.select(registry_changes).where(registry_changes.c.sync_run_id == run["id"]))
        .mappings()
        .all()
    )
    kept = cache.computed(picture) if cache is not None else {}
    inventory = kept["device_inventory"] if "device_inventory" in kept else device_inventory(picture)
    overview = kept["home_overview"] if "home_overview" in kept else home_overview(picture, run)
    classes = state_classes(connection, instance)
    return run, history_points(
        picture,
        inventory=inventory,
        classes=classes,
        overview=overview.to_dict("records")[0],
        changes=changes,
        instance=instance,
        time=epoch_ms(run["finished_at"]),
    )
