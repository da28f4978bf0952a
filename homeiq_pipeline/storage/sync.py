"""Writing one snapshot into the mirror, in one transaction.

For each table: load the keys and content hashes already stored (memory proportional to one
snapshot), classify every entry as added, updated or unchanged, and every stored live row that
the snapshot lacks as removed. Only added and updated rows are written, by one bulk
`INSERT ... ON CONFLICT DO UPDATE`; removals set `removed_at`. A sync-run row records the counts;
it is written as "running" just before the write transaction, so a run killed mid-write is found
and marked "interrupted" by the next sync. Any error rolls the whole transaction back (and removes
that row): the database stays as it was.
"""

from __future__ import annotations

import contextlib
import itertools
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import xxhash
from sqlalchemy.dialects import postgresql, sqlite

from ..homeassistant.snapshot import Snapshot
from .database import write_transaction
from .encoding import canonical_json, dumps
from .schema import MIRRORED_TABLES, REGISTRY_TABLES, MirroredTable, devices, entities, registry_changes, sync_runs

DEFAULT_INSTANCE = "home"
DEFAULT_MAX_REMOVED_SHARE = 0.5
GUARDED_TABLES: tuple[MirroredTable, ...] = (devices, entities)
WRITE_CHUNK = 2_000
# ha_sync_runs.outcome: a run is "running" while it writes; a killed one is found "interrupted".
RUNNING, SUCCESS, INTERRUPTED = "running", "success", "interrupted"


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
    upserts: list[tuple[dict[str, Any], str]]  # (entry, content hash) to insert or update
    added_keys: list[str]  # new, or back from removal (the rest of the upserts are updates)
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
    with write_transaction(engine, instance) as connection:
        plans, landed = _checked_plans(connection, snapshot, instance, now, force, max_removed_share)
        # The run is recorded before the writes, in its own small transaction, so a process killed
        # while writing (SIGKILL, power loss) leaves a trace: the next sync marks it interrupted.
        connection.execute(
            sync_runs.update()
            .where(sync_runs.c.instance == instance, sync_runs.c.outcome == RUNNING)
            .values(outcome=INTERRUPTED)
        )
        run_id = connection.execute(
            sync_runs.insert().values(
                instance=instance, started_at=snapshot.fetched_at, finished_at=now, outcome=RUNNING,
                ha_version=snapshot.ha_version, location_name=snapshot.location_name, forced=force, counts={},
            )
        ).inserted_primary_key[0]
    try:
        with write_transaction(engine, instance) as connection:
            if _successes(connection, instance) != landed:  # another sync landed in between: plan again
                plans, _ = _checked_plans(connection, snapshot, instance, now, force, max_removed_share)
            for plan in plans:
                _apply(connection, plan, instance, now)
            finished = datetime.now(UTC)
            counts = {plan.spec.name: plan.counts for plan in plans}
            connection.execute(
                sync_runs.update()
                .where(sync_runs.c.id == run_id)
                .values(finished_at=finished, outcome=SUCCESS, counts={name: c.as_dict() for name, c in counts.items()})
            )
            _log_registry_changes(connection, plans, run_id, instance)
    except BaseException:
        # The writes were rolled back; so is their record (a failure that was reported leaves no trace).
        with contextlib.suppress(Exception), write_transaction(engine, instance) as connection:
            connection.execute(sync_runs.delete().where(sync_runs.c.id == run_id))
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
    connection: sa.Connection, snapshot: Snapshot, instance: str, now: datetime, force: bool, max_share: float
) -> tuple[list[_TablePlan], int]:
    """Every table's plan (the data-loss guard applied), and how many successful syncs it builds on."""
    landed = _successes(connection, instance)
    plans = [_plan(connection, spec, getattr(snapshot, spec.snapshot_field), instance, now) for spec in MIRRORED_TABLES]
    if not force:
        _guard_against_data_loss(plans, max_share)
    return plans, landed


def _successes(connection: sa.Connection, instance: str) -> int:
    return connection.execute(
        sa.select(sa.func.count()).where(sync_runs.c.instance == instance, sync_runs.c.outcome == SUCCESS)
    ).scalar_one()


def _plan(
    connection: sa.Connection, spec: MirroredTable, entries: Sequence[dict[str, Any]], instance: str, now: datetime
) -> _TablePlan:
    table, key = spec.table, spec.key
    # The live rows' keys and hashes (an index covers this query). A key missing here is new or
    # returning from removal: both are written.
    stored = dict(
        _driver_rows(
            connection,
            sa.select(table.c[key], table.c.content_hash).where(
                table.c.instance == instance, table.c.removed_at.is_(None)
            ),
        )
    )
    keys = [entry.get(key) for entry in entries]
    if not all(type(k) is str and k for k in keys):
        index, bad = next((i, k) for i, k in enumerate(keys) if not (type(k) is str and k))
        raise UnexpectedPayload(f"{spec.name}: entry {index} has no {key!r} (got {bad!r})")
    present = set(keys)
    if len(present) != len(keys):
        twice = next(k for k, n in Counter(keys).items() if n > 1)
        raise UnexpectedPayload(f"{spec.name}: {key} {twice!r} appears twice in one snapshot")
    hashes = [xxhash.xxh3_128_hexdigest(canonical_json(entry)) for entry in entries]
    upserts = [(entry, h) for entry, k, h in zip(entries, keys, hashes) if stored.get(k) != h]
    added = [entry[key] for entry, _ in upserts if entry[key] not in stored]  # new, or back from removal
    removed = [k for k in stored if k not in present]
    return _TablePlan(
        spec,
        upserts,
        added,
        removed,
        TableCounts(
            added=len(added),
            updated=len(upserts) - len(added),
            removed=len(removed),
            unchanged=len(entries) - len(upserts),
        ),
        live_before=len(stored),
    )


def _log_registry_changes(connection: sa.Connection, plans: Iterable[_TablePlan], run_id: int, instance: str) -> None:
    rows = []
    for plan in plans:
        if plan.spec not in REGISTRY_TABLES:
            continue
        key, added = plan.spec.key, set(plan.added_keys)
        updated = [entry[key] for entry, _ in plan.upserts if entry[key] not in added]
        for action, keys in (("added", plan.added_keys), ("updated", updated), ("removed", plan.removed_keys)):
            if keys:
                rows.append({"sync_run_id": run_id, "table_name": plan.spec.name, "action": action,
                             "instance": instance, "count": len(keys), "keys": keys})
    if rows:
        connection.execute(registry_changes.insert(), rows)


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
        _upsert(connection, plan, instance, now)
    if plan.removed_keys:
        connection.execute(
            sa.update(table)
            .where(table.c.instance == instance, table.c[key] == sa.bindparam("removed_key"))
            .values(removed_at=now),
            [{"removed_key": k} for k in plan.removed_keys],
        )


def _upsert(connection: sa.Connection, plan: _TablePlan, instance: str, now: datetime) -> None:
    """One `INSERT ... ON CONFLICT DO UPDATE` for every added or updated row: executed per row by
    the driver (SQLite), or once over rows COPYed into a temporary table (PostgreSQL)."""
    table, key, fields = plan.spec.table, plan.spec.key, list(plan.spec.fields)
    columns = ["instance", *fields, "raw", "content_hash", "first_seen", "changed_at", "removed_at"]
    dialect = connection.dialect
    staging = _Staging(connection, table, columns) if dialect.name == "postgresql" else None
    insert = _insert_for(connection)(table)
    if staging is not None:
        insert = insert.from_select(columns, sa.select(*staging.table.c))
    statement = insert.on_conflict_do_update(
        index_elements=[table.c.instance, table.c[key]],
        # first_seen is left out: an update keeps the original; removed_at becomes NULL.
        set_={c: insert.excluded[c] for c in columns if c not in ("instance", key, "first_seen")},
    )
    if staging is None:
        convert = {c: table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in columns}
    else:  # COPY takes text: JSON columns as JSON text, the rest as psycopg writes them
        convert = {c: _json_text if isinstance(table.c[c].type, sa.JSON) else None for c in columns}
    stamp = _converted(convert["first_seen"], now)
    constant = {"instance": instance, "first_seen": stamp, "changed_at": stamp, "removed_at": None}
    # Parameters are built a column at a time (a list per field, converted and type-checked in
    # one pass each), and a chunk of rows at a time, so memory stays near one snapshot.
    for start in range(0, len(plan.upserts), WRITE_CHUNK):
        chunk = plan.upserts[start : start + WRITE_CHUNK]
        entries = [entry for entry, _ in chunk]
        values: dict[str, Iterable[Any]] = {name: itertools.repeat(value) for name, value in constant.items()}
        values["content_hash"] = [content_hash for _, content_hash in chunk]
        values["raw"] = _convert_all(convert["raw"], entries)
        for name in fields:
            column = [entry.get(name) for entry in entries]
            # Type checks happen here, during the writes: a bad value still rolls back everything.
            kind = table.c[name].type  # the column as created: a key is a String(255)
            if not set(map(type, column)) <= _python_types(kind) | {type(None)} or _out_of_range(table.c[name], column, dialect.name):
                raise _wrong_type(plan.spec, dialect.name, *entries)
            values[name] = _convert_all(convert[name], column)
        try:
            if staging is None:
                _execute_columns(connection, statement, values)
            else:
                staging.copy(values)
        except OverflowError:  # the driver's word for an integer beyond 64 bits
            raise _wrong_type(plan.spec, dialect.name, *entries) from None
    if staging is not None:
        connection.execute(statement)
        staging.drop()


def _json_text(value: Any) -> str | None:
    return None if value is None else dumps(value)  # None is SQL NULL (none_as_null), not JSON null


class _Staging:
    """PostgreSQL: a temporary table the rows are COPYed into, to be merged by one INSERT ...
    SELECT ... ON CONFLICT. Three times faster than the driver's executemany, whose per-row
    round trips and parameter adaptation dominate a large sync (bench/sync_bench.py --db-url)."""

    def __init__(self, connection: sa.Connection, table: sa.Table, columns: list[str]) -> None:
        self.connection, self.name, self.columns = connection, f"homeiq_staging_{table.name}", columns
        # LIKE: the same column types; no indexes or constraints to maintain. Gone at the
        # transaction's end in any case (ON COMMIT DROP), also when the sync fails.
        connection.exec_driver_sql(f'CREATE TEMPORARY TABLE "{self.name}" (LIKE "{table.name}") ON COMMIT DROP')
        self.table = sa.table(self.name, *(sa.column(c) for c in columns))

    def copy(self, values: dict[str, Iterable[Any]]) -> None:
        names = ", ".join(f'"{c}"' for c in values)
        cursor = self.connection.connection.cursor()
        try:
            with cursor.copy(f'COPY "{self.name}" ({names}) FROM STDIN') as copy:  # type: ignore[attr-defined]
                for row in zip(*values.values()):
                    copy.write_row(row)
        finally:
            cursor.close()

    def drop(self) -> None:
        self.connection.exec_driver_sql(f'DROP TABLE "{self.name}"')


def _execute_columns(connection: sa.Connection, statement: sa.Executable, values: dict[str, Iterable[Any]]) -> None:
    """Execute `statement` once per row of `values` (column -> its values, ready for the driver;
    an endless iterator for a constant)."""
    _execute_rows(connection, statement, tuple(values), list(zip(*values.values())))


def _execute_rows(
    connection: sa.Connection, statement: sa.Executable, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """Execute `statement` once per row (values of `columns`, ready for the driver).

    SQLAlchemy writes the SQL; the rows go straight to the driver's executemany, which halves the
    time of a large sync (measured: bench/sync_bench.py) compared with SQLAlchemy assembling and
    converting parameters row by row.
    """
    compiled = statement.compile(dialect=connection.dialect, column_keys=list(columns))
    if not compiled.positional:  # named parameters (psycopg): dicts
        connection.exec_driver_sql(compiled.string, [dict(zip(columns, row)) for row in rows])
        return
    order = tuple(compiled.positiontup or ())  # sqlite3: tuples in the statement's order
    if order != columns:
        reorder = operator.itemgetter(*(columns.index(name) for name in order))
        rows = [reorder(row) for row in rows]
    connection.exec_driver_sql(compiled.string, rows)


def _driver_rows(connection: sa.Connection, query: sa.Select[Any]) -> list[tuple[Any, ...]]:
    """The driver's plain tuples for a query of plain columns: for 100,000 rows, building
    SQLAlchemy Row objects takes longer than the query itself."""
    compiled = query.compile(dialect=connection.dialect)
    parameters = compiled.construct_params()
    cursor = connection.connection.cursor()
    try:
        if compiled.positional:
            cursor.execute(compiled.string, tuple(parameters[name] for name in compiled.positiontup or ()))
        else:
            cursor.execute(compiled.string, parameters)
        return cursor.fetchall()
    finally:
        cursor.close()


def _convert_all(convert: Callable[[Any], Any] | None, values: list[Any]) -> list[Any]:
    return values if convert is None else list(map(convert, values))


def _converted(convert: Callable[[Any], Any] | None, value: Any) -> Any:
    return convert(value) if convert is not None else value


def _insert_for(connection: sa.Connection) -> Callable[[sa.Table], Any]:
    dialect = connection.dialect.name
    if dialect == "sqlite":
        return sqlite.insert
    if dialect == "postgresql":
        return postgresql.insert
    raise StorageError(f"unsupported database dialect {dialect!r}: use SQLite or PostgreSQL")


_JSON_TYPES = frozenset({type(None), bool, int, float, str, list, dict})


def _python_types(kind: sa.types.TypeEngine) -> frozenset[type]:
    """The JSON value types a column accepts."""
    if isinstance(kind, sa.Boolean):
        return frozenset({bool})
    if isinstance(kind, sa.Integer):
        return frozenset({int})
    if isinstance(kind, sa.Float):
        return frozenset({int, float})
    if isinstance(kind, sa.String):  # Text too
        return frozenset({str})
    return _JSON_TYPES


_FLOAT_EXACT = 2**53  # a double holds every integer up to this, and not all beyond
_PG_INDEXED_BYTES = 2_000  # a btree index entry holds at most 2,704 bytes (with `instance` and overhead)


def _indexed(target: sa.Column[Any]) -> bool:
    return any(target.name in index.columns for index in target.table.indexes)  # type: ignore[attr-defined]


def _int_bits(kind: sa.types.TypeEngine, dialect: str) -> int:
    """The width of the integers a numeric column can hold (floats: what the drivers pass on)."""
    if isinstance(kind, sa.Integer) and not isinstance(kind, sa.BigInteger) and dialect == "postgresql":
        return 16 if isinstance(kind, sa.SmallInteger) else 32  # SQLite's INTEGER is always 64-bit
    return 64


def _out_of_range(target: sa.Column[Any], column: list[Any], dialect: str) -> bool:
    """Values of the right Python type that the database still cannot store (checked a column at
    a time: fast): integers too wide for the column (on SQLite, also bare ones in a JSON column),
    or (float columns) too wide for a double to hold exactly; on PostgreSQL, NUL characters, strings longer than the column allows, and
    strings too long for a btree index on an indexed column (SQLite stores all three)."""
    kind = target.type
    if isinstance(kind, sa.Float):
        numbers = [value for value in column if type(value) is int]
        return bool(numbers) and max(map(abs, numbers)) > _FLOAT_EXACT
    if isinstance(kind, sa.Integer) or (isinstance(kind, sa.JSON) and dialect == "sqlite"):
        # (SQLite gives a bare number in a JSON column numeric affinity: beyond 64 bits, a float.)
        numbers = [value for value in column if type(value) is int]
        limit = 2 ** (_int_bits(kind, dialect) - 1)
        return bool(numbers) and (min(numbers) < -limit or max(numbers) >= limit)
    if isinstance(kind, sa.String) and dialect == "postgresql":
        texts = [value for value in column if type(value) is str]
        if "\x00" in "".join(texts):
            return True
        if _indexed(target) and any(len(t) * 4 > _PG_INDEXED_BYTES and len(t.encode()) > _PG_INDEXED_BYTES for t in texts):
            return True
        return kind.length is not None and bool(texts) and max(map(len, texts)) > kind.length
    return False


def _misfit(target: sa.Column[Any], value: Any, dialect: str) -> str | None:
    """What a value of `target` should have been, or None if `value` fits."""
    kind = target.type
    if value is None:
        return None
    if type(value) not in _python_types(kind):
        return _type_name(kind)
    if _out_of_range(target, [value], dialect):
        if isinstance(value, int) and isinstance(kind, sa.Float):
            return "a number a double holds exactly (an integer of at most 2**53)"
        if isinstance(value, int):
            return f"a {_int_bits(kind, dialect)}-bit integer"
        if "\x00" in value:
            return "a string without NUL characters (PostgreSQL cannot store them)"
        if _indexed(target) and len(value.encode()) > _PG_INDEXED_BYTES:
            return f"a string of at most {_PG_INDEXED_BYTES} bytes (PostgreSQL indexes this column)"
        return f"a string of at most {kind.length} characters"  # type: ignore[attr-defined]
    return None


def _wrong_type(spec: MirroredTable, dialect: str, *entries: dict[str, Any]) -> UnexpectedPayload:
    """Name the first value that does not fit its column (slow: only runs when one exists)."""
    for entry in entries:
        for name in spec.fields:
            value = entry.get(name)
            expected = _misfit(spec.table.c[name], value, dialect)
            if expected is not None:
                return UnexpectedPayload(
                    f"{spec.name}: {spec.key} {_preview(entry.get(spec.key))}: field {name!r} is "
                    f"{type(value).__name__} {_preview(value)}, expected {expected}"
                )
    return UnexpectedPayload(f"{spec.name}: a value does not fit its column")


def _type_name(kind: sa.types.TypeEngine) -> str:
    for sa_type, name in ((sa.Boolean, "a boolean"), (sa.Integer, "an integer"), (sa.Float, "a number")):
        if isinstance(kind, sa_type):
            return name
    return "a string"


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
