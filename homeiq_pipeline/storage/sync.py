"""Writing one snapshot into the mirror, in one transaction.

For each table: load the keys and content hashes already stored (memory proportional to one
snapshot), classify every entry as added, updated or unchanged, and every stored live row that
the snapshot lacks as removed. Only added and updated rows are written, by one bulk
`INSERT ... ON CONFLICT DO UPDATE`; removals set `removed_at`. A sync-run row records the counts.
Any error rolls the whole transaction back: the database stays as it was.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ..homeassistant.snapshot import Snapshot
from .database import write_transaction
from .schema import MIRRORED_TABLES, MirroredTable, devices, entities, sync_runs

DEFAULT_INSTANCE = "home"
DEFAULT_MAX_REMOVED_SHARE = 0.5
GUARDED_TABLES: tuple[MirroredTable, ...] = (devices, entities)


class StorageError(Exception):
    """The snapshot could not be stored; nothing was written."""


class UnexpectedPayload(StorageError):
    """An entry lacks its key, repeats a key, or has a value of the wrong type for its column."""


class DataLossRefused(StorageError):
    """The snapshot would mark too large a share of devices or entities as removed."""


@dataclass(frozen=True)
class TableCounts:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0

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


@dataclass
class _TablePlan:
    spec: MirroredTable
    upserts: list[dict[str, Any]]
    removed_keys: list[str]
    counts: TableCounts
    live_before: int


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
    with write_transaction(engine) as connection:
        plans = [
            _plan(connection, spec, getattr(snapshot, spec.snapshot_field), instance, now)
            for spec in MIRRORED_TABLES
        ]
        if not force:
            _guard_against_data_loss(plans, max_removed_share)
        for plan in plans:
            _apply(connection, plan, instance, now)
        finished = datetime.now(UTC)
        counts = {plan.spec.name: plan.counts for plan in plans}
        run_id = connection.execute(
            sync_runs.insert().values(
                instance=instance,
                started_at=snapshot.fetched_at,
                finished_at=finished,
                outcome="success",
                ha_version=snapshot.ha_version,
                location_name=snapshot.location_name,
                forced=force,
                counts={name: c.as_dict() for name, c in counts.items()},
            )
        ).inserted_primary_key[0]
    return SyncResult(
        run_id=run_id,
        instance=instance,
        ha_version=snapshot.ha_version,
        location_name=snapshot.location_name,
        started_at=snapshot.fetched_at,
        finished_at=finished,
        counts=counts,
    )


def _plan(
    connection: sa.Connection, spec: MirroredTable, entries: Sequence[dict[str, Any]], instance: str, now: datetime
) -> _TablePlan:
    table, key = spec.table, spec.key
    stored = {
        row[0]: (row[1], row[2] is None)
        for row in connection.execute(
            sa.select(table.c[key], table.c.content_hash, table.c.removed_at).where(table.c.instance == instance)
        )
    }
    validators = {name: _validator(kind) for name, kind in spec.fields.items()}
    upserts: list[dict[str, Any]] = []
    seen: set[str] = set()
    added = updated = unchanged = 0
    for index, entry in enumerate(entries):
        entry_key = entry.get(key)
        if not isinstance(entry_key, str) or not entry_key:
            raise UnexpectedPayload(f"{spec.name}: entry {index} has no {key!r} (got {entry_key!r})")
        if entry_key in seen:
            raise UnexpectedPayload(f"{spec.name}: {key} {entry_key!r} appears twice in one snapshot")
        seen.add(entry_key)
        raw = json.dumps(entry, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        content_hash = hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()
        previous = stored.get(entry_key)
        if previous is not None and previous == (content_hash, True):
            unchanged += 1
            continue
        if previous is None or not previous[1]:
            added += 1  # new, or back after being removed
        else:
            updated += 1
        row = {"instance": instance, "raw": entry, "content_hash": content_hash, "changed_at": now}
        for name, is_valid in validators.items():
            value = entry.get(name)
            if value is not None and not is_valid(value):
                raise UnexpectedPayload(
                    f"{spec.name}: {key} {entry_key!r}: field {name!r} is {type(value).__name__} "
                    f"{_preview(value)}, expected {_type_name(spec.fields[name])}"
                )
            row[name] = value
        upserts.append(row)
    live_keys = [k for k, (_, live) in stored.items() if live]
    removed = [k for k in live_keys if k not in seen]
    return _TablePlan(
        spec,
        upserts,
        removed,
        TableCounts(added=added, updated=updated, removed=len(removed), unchanged=unchanged),
        live_before=len(live_keys),
    )


def _guard_against_data_loss(plans: Iterable[_TablePlan], max_share: float) -> None:
    for plan in plans:
        if plan.spec not in GUARDED_TABLES or plan.live_before == 0:
            continue
        share = plan.counts.removed / plan.live_before
        if share > max_share:
            raise DataLossRefused(
                f"refusing to mark {plan.counts.removed} of {plan.live_before} {plan.spec.name} rows "
                f"({share:.0%}) as removed: more than the allowed {max_share:.0%}. If Home Assistant "
                "really lost them, sync again with force (CLI: --force)"
            )


def _apply(connection: sa.Connection, plan: _TablePlan, instance: str, now: datetime) -> None:
    table, key = plan.spec.table, plan.spec.key
    if plan.upserts:
        insert = _insert_for(connection)(table)
        updatable = [c for c in plan.upserts[0] if c not in ("instance", key)]
        statement = insert.on_conflict_do_update(
            index_elements=[table.c.instance, table.c[key]],
            set_={**{c: insert.excluded[c] for c in updatable}, "removed_at": None},
        )
        # first_seen only applies to inserts: the conflict branch above never touches it.
        connection.execute(statement, [{**row, "first_seen": now, "removed_at": None} for row in plan.upserts])
    if plan.removed_keys:
        connection.execute(
            sa.update(table)
            .where(table.c.instance == instance, table.c[key] == sa.bindparam("removed_key"))
            .values(removed_at=now),
            [{"removed_key": k} for k in plan.removed_keys],
        )


def _insert_for(connection: sa.Connection) -> Callable[[sa.Table], Any]:
    dialect = connection.dialect.name
    if dialect == "sqlite":
        return sqlite.insert
    if dialect == "postgresql":
        return postgresql.insert
    raise StorageError(f"unsupported database dialect {dialect!r}: use SQLite or PostgreSQL")


def _validator(kind: sa.types.TypeEngine) -> Callable[[Any], bool]:
    if isinstance(kind, sa.Boolean):
        return lambda v: isinstance(v, bool)
    if isinstance(kind, sa.Integer):
        # SQL integers are 64-bit.
        return lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63
    if isinstance(kind, sa.Float):
        return lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    if isinstance(kind, sa.String):  # Text too
        return lambda v: isinstance(v, str)
    return lambda v: True  # JSON holds anything HA sends


def _type_name(kind: sa.types.TypeEngine) -> str:
    for sa_type, name in ((sa.Boolean, "a boolean"), (sa.Integer, "an integer"), (sa.Float, "a number")):
        if isinstance(kind, sa_type):
            return name
    return "a string"


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
