"""Planning one table's part of a sync, before anything is written: which entries are added, updated
or unchanged, which stored rows HA no longer has, and the data-loss guard over those removals.

Only the stored keys and content hashes are read (an index covers that query), so memory stays
near one snapshot.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import xxhash

from .encoding import canonical_json
from .errors import DataLossRefused, UnexpectedPayload
from .schema import MirroredTable, live


@dataclass(frozen=True)
class TablePlan:
    spec: MirroredTable
    upserts: list[tuple[dict[str, Any], str]]  # (entry, content hash) to insert or update
    added_keys: list[str]  # new, or back from removal (the rest of the upserts are updates)
    removed_keys: list[str]
    unchanged: int
    live_before: int

    @property
    def updated_keys(self) -> list[str]:
        added, key = set(self.added_keys), self.spec.key
        return [entry[key] for entry, _ in self.upserts if entry[key] not in added]


def plan_table(
    connection: sa.Connection, spec: MirroredTable, entries: Sequence[dict[str, Any]], instance: str
) -> TablePlan:
    """What storing `entries` as the table's live rows of `instance` changes. Raises
    `UnexpectedPayload` for an entry without its key, or a key that appears twice."""
    table, key = spec.table, spec.key
    # A key missing here is new or returning from removal: both are written.
    stored = dict(_driver_rows(connection, sa.select(table.c[key], table.c.content_hash).where(live(table, instance))))
    keys = [entry.get(key) for entry in entries]
    if not all(type(k) is str and k for k in keys):
        index, bad = next((i, k) for i, k in enumerate(keys) if not (type(k) is str and k))
        raise UnexpectedPayload(f"{spec.name}: entry {index} has no {key!r} (got {bad!r})")
    present = set(keys)
    if len(present) != len(keys):
        twice = next(k for k, n in Counter(keys).items() if n > 1)
        raise UnexpectedPayload(f"{spec.name}: {key} {twice!r} appears twice in one snapshot")
    hashes = [xxhash.xxh3_128_hexdigest(canonical_json(entry)) for entry in entries]
    upserts = [(entry, h) for entry, k, h in zip(entries, keys, hashes, strict=True) if stored.get(k) != h]
    return TablePlan(
        spec,
        upserts,
        added_keys=[entry[key] for entry, _ in upserts if entry[key] not in stored],
        removed_keys=[k for k in stored if k not in present],
        unchanged=len(entries) - len(upserts),
        live_before=len(stored),
    )


def refuse_data_loss(plans: Iterable[TablePlan], guarded: Sequence[MirroredTable], max_share: float) -> None:
    """Raise `DataLossRefused` if a plan of a `guarded` table would mark more than `max_share` of
    its live rows removed (say, an integration failed to load)."""
    for plan in plans:
        if plan.spec not in guarded or plan.live_before == 0:
            continue
        removed = len(plan.removed_keys)
        share = removed / plan.live_before
        if share > max_share:
            raise DataLossRefused(
                f"refusing to mark {removed} of {plan.live_before} {plan.spec.name} rows "
                f"({share:.0%}) as removed: more than the allowed {max_share:.0%}. If Home Assistant "
                "really lost them, sync again with force (CLI: --force)"
            )


def _driver_rows(connection: sa.Connection, query: sa.Select[Any]) -> Sequence[tuple[Any, ...]]:
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
