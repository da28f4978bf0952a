"""Whether Home Assistant's values fit the mirror's columns, by one table of rules.

Each rule says which columns it applies to (by type and database), how to test a column's values,
and what a fitting value would have been. The sync tests a chunk of rows a column at a time (fast);
only when a test fails does it go value by value, with the same rules, to name the row and field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import sqlalchemy as sa

from .errors import UnexpectedPayload
from .schema import MirroredTable

FLOAT_EXACT = 2**53  # a double holds every integer up to this, and not all beyond
PG_INDEXED_BYTES = 2_000  # a btree index entry holds at most 2,704 bytes (with `instance` and overhead)

Kind = type[sa.types.TypeEngine[Any]]


@dataclass(frozen=True)
class Target:
    """A column on one database: where a value is to be stored, with the facts the rules ask about."""

    column: sa.Column[Any]
    dialect: str

    def is_(self, *kinds: Kind) -> bool:
        return isinstance(self.column.type, kinds)  # the type as created: a key is a String(255)

    @property
    def int_bits(self) -> int:
        """The width of the integers the column holds (floats: what the drivers pass on)."""
        if self.is_(sa.Integer) and not self.is_(sa.BigInteger) and self.dialect == "postgresql":
            return 16 if self.is_(sa.SmallInteger) else 32  # SQLite's INTEGER is always 64-bit
        return 64

    @property
    def length(self) -> int | None:
        """The most characters the column holds (None: no limit)."""
        return getattr(self.column.type, "length", None)

    @cached_property
    def indexed(self) -> bool:
        return any(self.column.name in index.columns for index in self.column.table.indexes)


class ColumnValues:
    """One column's values (a chunk of rows, or a single value), with the views the rules test,
    each built at most once however many rules look at it."""

    def __init__(self, values: Sequence[Any]) -> None:
        self.values = values

    @cached_property
    def types(self) -> set[type]:
        return set(map(type, self.values)) - {type(None)}  # None is SQL NULL: every column takes it

    @cached_property
    def ints(self) -> list[int]:
        return [value for value in self.values if type(value) is int] if int in self.types else []

    @cached_property
    def texts(self) -> list[str]:
        return [value for value in self.values if type(value) is str] if str in self.types else []


Misfits = Callable[[ColumnValues, Target], bool]  # True if any of the values breaks the rule


@dataclass(frozen=True)
class Rule:
    """One thing a value must be to be stored: written once, for the fast test and for the message."""

    kinds: tuple[Kind, ...]  # the column types it applies to
    misfits: Misfits
    expected: str  # what a value should have been; `{target...}` is filled in from the column
    dialect: str | None = None  # only on this database; None: on every one

    def applies(self, target: Target) -> bool:
        return target.is_(*self.kinds) and self.dialect in (None, target.dialect)


def _only(*types: type) -> Misfits:
    accepted = frozenset(types)
    return lambda values, target: not values.types <= accepted


def _outside_int_range(values: ColumnValues, target: Target) -> bool:
    limit = 2 ** (target.int_bits - 1)
    return bool(values.ints) and (min(values.ints) < -limit or max(values.ints) >= limit)


def _too_long_to_index(values: ColumnValues, target: Target) -> bool:
    # (at most 4 bytes a character: most strings are short enough without encoding them)
    return target.indexed and any(
        len(text) * 4 > PG_INDEXED_BYTES and len(text.encode()) > PG_INDEXED_BYTES for text in values.texts
    )


def _too_long(values: ColumnValues, target: Target) -> bool:
    return target.length is not None and bool(values.texts) and max(map(len, values.texts)) > target.length


# In order: a value is reported by the first rule it breaks. SQLite stores any string; PostgreSQL does not.
RULES: tuple[Rule, ...] = (
    Rule((sa.Boolean,), _only(bool), "a boolean"),
    Rule((sa.Integer,), _only(int), "an integer"),
    Rule((sa.Float,), _only(int, float), "a number"),
    Rule((sa.String,), _only(str), "a string"),  # Text too
    Rule((sa.JSON,), _only(bool, int, float, str, list, dict), "a JSON value"),
    Rule(
        (sa.Float,),
        lambda values, target: bool(values.ints) and max(map(abs, values.ints)) > FLOAT_EXACT,
        "a number a double holds exactly (an integer of at most 2**53)",
    ),
    Rule((sa.Integer,), _outside_int_range, "a {target.int_bits}-bit integer"),
    # SQLite gives a bare number in a JSON column numeric affinity: beyond 64 bits, a float.
    Rule((sa.JSON,), _outside_int_range, "a {target.int_bits}-bit integer", dialect="sqlite"),
    Rule(
        (sa.String,),
        lambda values, target: "\x00" in "".join(values.texts),
        "a string without NUL characters (PostgreSQL cannot store them)",
        dialect="postgresql",
    ),
    Rule(
        (sa.String,),
        _too_long_to_index,
        f"a string of at most {PG_INDEXED_BYTES} bytes (PostgreSQL indexes this column)",
        dialect="postgresql",
    ),
    Rule((sa.String,), _too_long, "a string of at most {target.length} characters", dialect="postgresql"),
)


class TableFit:
    """The rules that apply to each HA column of one mirrored table on one database."""

    def __init__(self, spec: MirroredTable, dialect: str) -> None:
        self.spec = spec
        self.targets = {name: Target(spec.table.c[name], dialect) for name in spec.fields}
        self.rules = {name: [rule for rule in RULES if rule.applies(target)] for name, target in self.targets.items()}

    def fits(self, name: str, values: Sequence[Any]) -> bool:
        """Whether every value of column `name` can be stored (a column at a time: fast)."""
        return self._broken_rule(name, values) is None

    def misfit(self, entries: Sequence[dict[str, Any]]) -> UnexpectedPayload:
        """The error naming the first value in `entries` that does not fit (slow: runs only when one exists)."""
        for entry in entries:
            for name, target in self.targets.items():
                value = entry.get(name)
                broken = self._broken_rule(name, [value])
                if broken is not None:
                    return UnexpectedPayload(
                        f"{self.spec.name}: {self.spec.key} {_preview(entry.get(self.spec.key))}: field {name!r} is "
                        f"{type(value).__name__} {_preview(value)}, expected {broken.expected.format(target=target)}"
                    )
        return UnexpectedPayload(f"{self.spec.name}: a value does not fit its column")

    def _broken_rule(self, name: str, values: Sequence[Any]) -> Rule | None:
        column, target = ColumnValues(values), self.targets[name]
        return next((rule for rule in self.rules[name] if rule.misfits(column, target)), None)


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
