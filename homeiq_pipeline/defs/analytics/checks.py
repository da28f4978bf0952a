"""Checks that the analytics agree with the mirror they were computed from. Each check reads the
analytics and the mirror in ONE snapshot: a sync committing meanwhile cannot fail it falsely."""

from collections.abc import Callable

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from ...storage import read_snapshot
from ...storage.queries import row_counts
from ...storage.schema import ANALYTICS_TABLES
from ..checks import Verdict, check_each_home
from ..resources import MirrorDatabase


class _Reading:
    """The analytics tables and the mirror's live counts of one home, in one read snapshot."""

    def __init__(self, connection: sa.Connection, home: str) -> None:
        self.connection, self.home = connection, home

    def table(self, name: str) -> pd.DataFrame:
        table = ANALYTICS_TABLES[name]
        query = sa.select(table).where(table.c.instance == self.home)
        if "id" in table.c:
            query = query.order_by(table.c.id.desc()).limit(1)  # the history's newest row
        rows = self.connection.execute(query).mappings().all()
        return pd.DataFrame(rows, columns=[c.name for c in table.columns])

    def live(self) -> dict[str, int]:
        return {name: counts["live"] for name, counts in row_counts(self.connection, self.home).items()}


def _check(context: dg.AssetCheckExecutionContext, mirror: MirrorDatabase, judge: Callable[[_Reading], Verdict]):
    def evaluate(home: str) -> Verdict:
        with read_snapshot(mirror.engine) as connection:
            return judge(_Reading(connection, home))

    return check_each_home(context, evaluate)


def _compare(expected: dict[str, int], actual: dict[str, int]) -> Verdict:
    return expected == actual, {
        **{f"mirror_{k}": v for k, v in expected.items()},
        **{f"analytics_{k}": v for k, v in actual.items()},
    }


@dg.asset_check(asset="home_overview", description="The overview's counts equal the mirror's live rows.")
def overview_counts_match_the_mirror(
    context: dg.AssetCheckExecutionContext, mirror: MirrorDatabase
) -> dg.AssetCheckResult:
    def judge(reading: _Reading) -> Verdict:
        live = reading.live()
        row = reading.table("home_overview").iloc[0]
        names = {
            "devices": "ha_devices",
            "entities": "ha_entities",
            "areas": "ha_areas",
            "floors": "ha_floors",
            "integrations": "ha_config_entries",
            "entities_with_state": "ha_states",
        }
        return _compare({k: live[t] for k, t in names.items()}, {k: int(row[k]) for k in names})

    return _check(context, mirror, judge)


@dg.asset_check(asset="home_overview", description="Percentages are NULL or within 0-100.")
def overview_percentages_are_in_range(
    context: dg.AssetCheckExecutionContext, mirror: MirrorDatabase
) -> dg.AssetCheckResult:
    def judge(reading: _Reading) -> Verdict:
        row = reading.table("home_overview").iloc[0]
        values = {k: row[k] for k in ("integration_health_pct", "availability_pct")}
        ok = all(pd.isna(v) or 0 <= v <= 100 for v in values.values())
        return ok, {k: None if pd.isna(v) else float(v) for k, v in values.items()}

    return _check(context, mirror, judge)


@dg.asset_check(
    asset="entity_availability", description="Availability is NULL or within 0-100; counts add up to the states."
)
def availability_is_consistent(context: dg.AssetCheckExecutionContext, mirror: MirrorDatabase) -> dg.AssetCheckResult:
    def judge(reading: _Reading) -> Verdict:
        frame = reading.table("entity_availability")
        in_range = bool(frame["availability_pct"].dropna().between(0, 100).all())
        states = reading.live()["ha_states"]
        counted = int(frame["entities"].sum())
        return in_range and counted == states, {"pct_in_range": in_range, "entities_counted": counted, "states": states}

    return _check(context, mirror, judge)


@dg.asset_check(asset="integration_health", description="Every config entry is counted once.")
def integration_health_counts_every_entry(
    context: dg.AssetCheckExecutionContext, mirror: MirrorDatabase
) -> dg.AssetCheckResult:
    def judge(reading: _Reading) -> Verdict:
        counted = int(reading.table("integration_health")["config_entries"].sum())
        return _compare({"config_entries": reading.live()["ha_config_entries"]}, {"config_entries": counted})

    return _check(context, mirror, judge)


@dg.asset_check(asset="area_summary", description="Every live device and entity is counted in exactly one area row.")
def area_summary_counts_everything_once(
    context: dg.AssetCheckExecutionContext, mirror: MirrorDatabase
) -> dg.AssetCheckResult:
    def judge(reading: _Reading) -> Verdict:
        frame, live = reading.table("area_summary"), reading.live()
        return _compare(
            {"devices": live["ha_devices"], "entities": live["ha_entities"]},
            {"devices": int(frame["devices"].sum()), "entities": int(frame["entities"].sum())},
        )

    return _check(context, mirror, judge)


@dg.asset_check(asset="device_inventory", description="No area or integration name is missing where the mirror has it.")
def device_names_are_resolved(context: dg.AssetCheckExecutionContext, mirror: MirrorDatabase) -> dg.AssetCheckResult:
    def judge(reading: _Reading) -> Verdict:
        frame = reading.table("device_inventory")
        areas = set(reading.table("area_summary")["area_id"].dropna())
        missing_area = frame[frame["area_id"].isin(areas) & frame["area_name"].isna()]["device_id"].tolist()
        missing_integration = frame[frame["integration_title"].notna() & frame["integration"].isna()][
            "device_id"
        ].tolist()
        live = reading.live()["ha_devices"]
        return not missing_area and not missing_integration and len(frame) == live, {
            "rows": len(frame),
            "live_devices": live,
            "missing_area_name": len(missing_area),
            "missing_integration": len(missing_integration),
        }

    return _check(context, mirror, judge)
