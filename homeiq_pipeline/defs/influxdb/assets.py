"""The optional history asset: each sync's registry and state snapshot, written to InfluxDB. It is part
of the code location only when STORE_DEVICE_HISTORY_IN_INFLUXDB is true."""

import dagster as dg
from pydantic import Field

from ... import analytics, history
from ...names import HISTORY_GROUP
from ...settings import current
from ...storage import read_snapshot
from ...storage.schema import MIRRORED_TABLES
from ..partitions import HOMES, run_home
from ..resources import MirrorDatabase
from ..retries import trying_again
from .resources import InfluxDBRefused, InfluxDBResource, InfluxDBUnavailable


class HistoryConfig(dg.Config):
    tries: int = Field(default=4, ge=1)
    """Writes to an unreachable InfluxDB before the run fails (a refused write fails at once)."""
    first_pause_seconds: float = Field(default=15.0, ge=0)
    """Pause after the first failed write, doubling after each next one (15, 30, 60 s)."""


@dg.asset(
    name="home_assistant_history",
    group_name=HISTORY_GROUP,
    # After the analytics: it writes their device and home numbers, from the same read of the mirror.
    deps=[*(spec.name for spec in MIRRORED_TABLES), "home_overview", "device_inventory"],
    kinds={"influxdb"},
    partitions_def=HOMES,
    description="Each sync's devices (ha_device), entities with a state (ha_entity), home-level numbers "
    "(ha_overview) and registry changes (ha_registry_change), tagged with area, floor, device and "
    "integration, written to InfluxDB at the sync's time.",
)
def home_assistant_history(
    context: dg.AssetExecutionContext, config: HistoryConfig, mirror: MirrorDatabase, influxdb: InfluxDBResource
) -> dg.MaterializeResult:
    instance = run_home(context)
    try:
        with read_snapshot(mirror.engine) as connection:
            # Stamped with the sync's own time: a retry writes the same series at the same time.
            run, points = history.latest_sync_points(connection, instance, cache=mirror.pictures)
    except analytics.NoSyncYet as exc:
        raise dg.Failure(str(exc), allow_retries=False) from exc
    lines = [point for batch in points.values() for point in batch]
    written = trying_again(
        lambda: influxdb.write(lines),
        expected=(InfluxDBUnavailable, InfluxDBRefused),
        can_help=lambda exc: isinstance(exc, InfluxDBUnavailable),  # a refusal needs a person (token, bucket)
        metadata=lambda exc: {"cause": "unreachable" if isinstance(exc, InfluxDBUnavailable) else "refused"},
        tries=config.tries,
        first_pause=config.first_pause_seconds,
        log=context.log.warning,
    )
    context.log.info(f"wrote {written} points for sync run {run['id']} to InfluxDB bucket {influxdb.bucket}")
    return dg.MaterializeResult(
        metadata={
            "points": written,
            **{f"points_{measurement}": len(batch) for measurement, batch in points.items()},
            "sync_run_id": run["id"],
            "timestamp": dg.MetadataValue.timestamp(run["finished_at"]),
            "bucket": influxdb.bucket,
        }
    )


@dg.definitions
def history_when_enabled() -> dg.Definitions:
    """The history asset, only when it is switched on: switched off it could never be materialized,
    so it would show as missing for ever and fail every "Materialize all" that selected it."""
    return dg.Definitions(assets=[home_assistant_history] if current().history_enabled else [])
