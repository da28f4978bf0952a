"""Storing one snapshot as the current state of an instance: the sync's order of events.

Every table is planned (storage.plan: what is added, updated, unchanged, removed; the data-loss
guard), then written (storage.write: only the added and updated rows, removals as `removed_at`) in
one transaction, with a sync-run row recording the counts. That row is written as "running" just
before the write transaction, so a run killed mid-write is found and marked "interrupted" by the
next sync. Any error rolls the whole transaction back (and removes that row): the database stays
as it was.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from ..snapshot import Snapshot
from . import write
from .database import write_transaction
from .errors import DataLossRefused, StorageError, UnexpectedPayload
from .plan import TablePlan, plan_table, refuse_data_loss
from .schema import MIRRORED_TABLES, REGISTRY_TABLES, MirroredTable, devices, entities, sync_runs

__all__ = [
    "DEFAULT_INSTANCE",
    "DEFAULT_MAX_REMOVED_SHARE",
    "DataLossRefused",
    "StorageError",
    "SyncResult",
    "TableCounts",
    "UnexpectedPayload",
    "sync_snapshot",
]

DEFAULT_INSTANCE = "home"
DEFAULT_MAX_REMOVED_SHARE = 0.5
GUARDED_TABLES: tuple[MirroredTable, ...] = (devices, entities)  # the data-loss guard's tables
# ha_sync_runs.outcome: a run is "running" while it writes; a killed one is found "interrupted".
RUNNING, SUCCESS, INTERRUPTED = "running", "success", "interrupted"


@dataclass(frozen=True)
class TableCounts:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0

    @classmethod
    def of(cls, plan: TablePlan) -> TableCounts:
        added = len(plan.added_keys)
        return cls(
            added=added, updated=len(plan.upserts) - added, removed=len(plan.removed_keys), unchanged=plan.unchanged
        )

    @property
    def live(self) -> int:
        return self.added + self.updated + self.unchanged

    @property
    def written(self) -> int:
        return self.added + self.updated + self.removed

    def as_dict(self) -> dict[str, int]:
        return {
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "live": self.live,
        }


@dataclass(frozen=True)
class SyncResult:
    run_id: int
    instance: str
    ha_version: str
    location_name: str | None
    started_at: datetime
    finished_at: datetime
    counts: dict[str, TableCounts] = field(default_factory=dict)

    @property
    def rows_written(self) -> int:
        return sum(c.written for c in self.counts.values())


def sync_snapshot(
    engine: sa.Engine,
    snapshot: Snapshot,
    *,
    instance: str = DEFAULT_INSTANCE,
    force: bool = False,
    max_removed_share: float = DEFAULT_MAX_REMOVED_SHARE,
) -> SyncResult:
    """Store `snapshot` as the current state of `instance`, in one transaction.

    Raises `DataLossRefused` (unless `force`) when more than `max_removed_share` of the live
    devices or entities would be marked removed, and `UnexpectedPayload` for malformed entries;
    in both cases nothing is written.
    """
    now = datetime.now(UTC)
    run_id: int | None = None
    try:  # from before the run is recorded: an interrupt anywhere after it leaves no "running" row
        with write_transaction(engine, instance) as connection:
            plans, landed = _checked_plans(connection, snapshot, instance, force, max_removed_share)
            # The run is recorded before the writes, in its own small transaction, so a process killed
            # while writing (SIGKILL, power loss) leaves a trace: the next sync marks it interrupted.
            connection.execute(
                sync_runs.update()
                .where(sync_runs.c.instance == instance, sync_runs.c.outcome == RUNNING)
                .values(outcome=INTERRUPTED)
            )
            run_id = connection.execute(
                sync_runs.insert()
                .values(
                    instance=instance,
                    started_at=snapshot.fetched_at,
                    finished_at=now,
                    outcome=RUNNING,
                    ha_version=snapshot.ha_version,
                    location_name=snapshot.location_name,
                    forced=force,
                    counts={},
                )
                .returning(sync_runs.c.id)
            ).scalar_one()
        with write_transaction(engine, instance) as connection:
            if _successes(connection, instance) != landed:  # another sync landed in between: plan again
                plans, _ = _checked_plans(connection, snapshot, instance, force, max_removed_share)
            for plan in plans:
                write.apply_plan(connection, plan, instance, now)  # through the module: tests wrap it
            finished = datetime.now(UTC)
            counts = {plan.spec.name: TableCounts.of(plan) for plan in plans}
            connection.execute(
                sync_runs.update()
                .where(sync_runs.c.id == run_id)
                .values(finished_at=finished, outcome=SUCCESS, counts={name: c.as_dict() for name, c in counts.items()})
            )
            write.record_registry_changes(connection, plans, REGISTRY_TABLES, run_id, instance)
    except BaseException:
        # The writes were rolled back; so is their record (a failure that was reported leaves no
        # trace). If the interrupt came before the record's commit, there is none to remove.
        if run_id is not None:
            with contextlib.suppress(Exception), write_transaction(engine, instance) as connection:
                connection.execute(sync_runs.delete().where(sync_runs.c.id == run_id, sync_runs.c.outcome == RUNNING))
        raise
    return SyncResult(
        run_id=run_id,
        instance=instance,
        ha_version=snapshot.ha_version,
        location_name=snapshot.location_name,
        started_at=snapshot.fetched_at,
        finished_at=finished,
        counts=counts,
    )


def _checked_plans(
    connection: sa.Connection, snapshot: Snapshot, instance: str, force: bool, max_share: float
) -> tuple[list[TablePlan], int]:
    """Every table's plan (the data-loss guard applied), and how many successful syncs it builds on."""
    landed = _successes(connection, instance)
    plans = [plan_table(connection, spec, getattr(snapshot, spec.snapshot_field), instance) for spec in MIRRORED_TABLES]
    if not force:
        refuse_data_loss(plans, GUARDED_TABLES, max_share)
    return plans, landed


def _successes(connection: sa.Connection, instance: str) -> int:
    return connection.execute(
        sa.select(sa.func.count()).where(sync_runs.c.instance == instance, sync_runs.c.outcome == SUCCESS)
    ).scalar_one()
