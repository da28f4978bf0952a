"""Writing a table's plan inside the sync's transaction: one bulk `INSERT ... ON CONFLICT DO UPDATE`
for the added and updated rows, `removed_at` for the removed ones, and the registry change log.

The rows bypass SQLAlchemy's per-row work: on SQLite they go straight to the driver's executemany,
on PostgreSQL they are COPYed into a staging table and merged by one statement. Parameters are
built (and type-checked) a column at a time and a chunk of rows at a time, so memory stays near
one snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from .encoding import dumps
from .errors import StorageError
from .fits import TableFit
from .plan import TablePlan
from .schema import MirroredTable, registry_changes

WRITE_CHUNK = 2_000


def apply_plan(connection: sa.Connection, plan: TablePlan, instance: str, now: datetime) -> None:
    """Write one table's plan; `now` stamps the rows written and removed."""
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


def record_registry_changes(
    connection: sa.Connection, plans: Iterable[TablePlan], logged: Sequence[MirroredTable], run_id: int, instance: str
) -> None:
    """One ha_registry_changes row per table of `logged`, action and sync, listing the keys."""
    rows = [
        {
            "sync_run_id": run_id,
            "table_name": plan.spec.name,
            "action": action,
            "instance": instance,
            "count": len(keys),
            "keys": keys,
        }
        for plan in plans
        if plan.spec in logged
        for action, keys in (("added", plan.added_keys), ("updated", plan.updated_keys), ("removed", plan.removed_keys))
        if keys
    ]
    if rows:
        connection.execute(registry_changes.insert(), rows)


def _upsert(connection: sa.Connection, plan: TablePlan, instance: str, now: datetime) -> None:
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
    fit = TableFit(plan.spec, dialect.name)
    stamp = _converted(convert["first_seen"], now)
    constant = {"instance": instance, "first_seen": stamp, "changed_at": stamp, "removed_at": None}
    for start in range(0, len(plan.upserts), WRITE_CHUNK):
        chunk = plan.upserts[start : start + WRITE_CHUNK]
        entries = [entry for entry, _ in chunk]
        values = {name: [value] * len(chunk) for name, value in constant.items()}
        values["content_hash"] = [content_hash for _, content_hash in chunk]
        values["raw"] = _convert_all(convert["raw"], entries)
        for name in fields:
            column = [entry.get(name) for entry in entries]
            # Checked here, during the writes: a bad value still rolls back everything.
            if not fit.fits(name, column):
                raise fit.misfit(entries)
            values[name] = _convert_all(convert[name], column)
        try:
            if staging is None:
                _execute_per_row(connection, statement, values)
            else:
                staging.copy(values)
        except OverflowError:  # the driver's word for an integer beyond 64 bits
            raise fit.misfit(entries) from None
    if staging is not None:
        connection.execute(statement)
        staging.drop()


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

    def copy(self, values: dict[str, list[Any]]) -> None:
        names = ", ".join(f'"{c}"' for c in values)
        cursor = self.connection.connection.cursor()
        try:
            with cursor.copy(f'COPY "{self.name}" ({names}) FROM STDIN') as copy:
                for row in zip(*values.values(), strict=True):
                    copy.write_row(row)
        finally:
            cursor.close()

    def drop(self) -> None:
        self.connection.exec_driver_sql(f'DROP TABLE "{self.name}"')


def _execute_per_row(connection: sa.Connection, statement: sa.Insert, values: dict[str, list[Any]]) -> None:
    """SQLite: execute `statement` once per row of `values` (column -> its values, ready for the driver).

    SQLAlchemy writes the SQL; the rows go straight to the driver's executemany, which halves the
    time of a large sync (measured: bench/sync_bench.py) compared with SQLAlchemy assembling and
    converting parameters row by row.
    """
    compiled = statement.compile(dialect=connection.dialect, column_keys=list(values))
    order = compiled.positiontup or ()  # sqlite3 takes tuples, in the statement's order
    connection.exec_driver_sql(compiled.string, list(zip(*(values[name] for name in order), strict=True)))


def _json_text(value: Any) -> str | None:
    return None if value is None else dumps(value)  # None is SQL NULL (none_as_null), not JSON null


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
