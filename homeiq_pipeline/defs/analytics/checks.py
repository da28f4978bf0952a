"""Checks that the analytics agree with the mirror they were computed from (both read in one
snapshot, see `mirror_check`)."""

import pandas as pd
import sqlalchemy as sa

from ...storage.queries import row_counts
from ...storage.schema import ANALYTICS_TABLES
from ..checks import Verdict, mirror_check


def _table(connection: sa.Connection, name: str, home: str) -> pd.DataFrame:
    table = ANALYTICS_TABLES[name]
    query = sa.select(table).where(table.c.instance == home)
    if "id" in table.c:
        query = query.order_by(table.c.id.desc()).limit(1)  # the history's newest row
    rows = connection.execute(query).mappings().all()
    return pd.DataFrame(rows, columns=[c.name for c in table.columns])


def _live(connection: sa.Connection, home: str) -> dict[str, int]:
    return {name: counts["live"] for name, counts in row_counts(connection, home).items()}


def _compare(expected: dict[str, int], actual: dict[str, int]) -> Verdict:
    return expected == actual, {
        **{f"mirror_{k}": v for k, v in expected.items()},
        **{f"analytics_{k}": v for k, v in actual.items()},
    }


# Overview column -> the mirrored table whose live rows it counts.
OVERVIEW_COUNTS = {
    "devices": "ha_devices",
    "entities": "ha_entities",
    "areas": "ha_areas",
    "floors": "ha_floors",
    "integrations": "ha_config_entries",
    "entities_with_state": "ha_states",
}


@mirror_check("home_overview", "The overview's counts equal the mirror's live rows.")
def overview_counts_match_the_mirror(connection: sa.Connection, home: str) -> Verdict:
    live, row = _live(connection, home), _table(connection, "home_overview", home).iloc[0]
    return _compare({k: live[t] for k, t in OVERVIEW_COUNTS.items()}, {k: int(row[k]) for k in OVERVIEW_COUNTS})


@mirror_check("home_overview", "Percentages are NULL or within 0-100.")
def overview_percentages_are_in_range(connection: sa.Connection, home: str) -> Verdict:
    row = _table(connection, "home_overview", home).iloc[0]
    values = {k: row[k] for k in ("integration_health_pct", "availability_pct")}
    ok = all(pd.isna(v) or 0 <= v <= 100 for v in values.values())
    return ok, {k: None if pd.isna(v) else float(v) for k, v in values.items()}


@mirror_check("entity_availability", "Availability is NULL or within 0-100; counts add up to the states.")
def availability_is_consistent(connection: sa.Connection, home: str) -> Verdict:
    frame = _table(connection, "entity_availability", home)
    in_range = bool(frame["availability_pct"].dropna().between(0, 100).all())
    states, counted = _live(connection, home)["ha_states"], int(frame["entities"].sum())
    return in_range and counted == states, {"pct_in_range": in_range, "entities_counted": counted, "states": states}


@mirror_check("integration_health", "Every config entry is counted once.")
def integration_health_counts_every_entry(connection: sa.Connection, home: str) -> Verdict:
    counted = int(_table(connection, "integration_health", home)["config_entries"].sum())
    return _compare({"config_entries": _live(connection, home)["ha_config_entries"]}, {"config_entries": counted})


@mirror_check("area_summary", "Every live device and entity is counted in exactly one area row.")
def area_summary_counts_everything_once(connection: sa.Connection, home: str) -> Verdict:
    frame, live = _table(connection, "area_summary", home), _live(connection, home)
    return _compare(
        {"devices": live["ha_devices"], "entities": live["ha_entities"]},
        {"devices": int(frame["devices"].sum()), "entities": int(frame["entities"].sum())},
    )


@mirror_check("device_inventory", "No area or integration name is missing where the mirror has it.")
def device_names_are_resolved(connection: sa.Connection, home: str) -> Verdict:
    frame = _table(connection, "device_inventory", home)
    areas = set(_table(connection, "area_summary", home)["area_id"].dropna())
    missing_area = frame[frame["area_id"].isin(areas) & frame["area_name"].isna()]["device_id"].tolist()
    missing_integration = frame[frame["integration_title"].notna() & frame["integration"].isna()]["device_id"].tolist()
    live = _live(connection, home)["ha_devices"]
    return not missing_area and not missing_integration and len(frame) == live, {
        "rows": len(frame),
        "live_devices": live,
        "missing_area_name": len(missing_area),
        "missing_integration": len(missing_integration),
    }
