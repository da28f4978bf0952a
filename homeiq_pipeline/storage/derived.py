"""Writing derived tables (analytics) next to the mirror: in one transaction, per instance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import sqlalchemy as sa

from .database import write_transaction
from .schema import ANALYTICS_TABLES


def _records(frame: pd.DataFrame, instance: str) -> list[dict[str, Any]]:
    """Rows as plain Python values, NaN/NaT as NULL."""
    plain = frame.astype(object).where(frame.notna(), None)
    return [{**row, "instance": instance} for row in plain.to_dict("records")]


def write_analytics(
    engine: sa.Engine, instance: str, replace: Mapping[str, pd.DataFrame], append: Mapping[str, pd.DataFrame]
) -> None:
    """Replace each `replace` table's rows of `instance` and append the `append` rows, atomically:
    a reader sees the previous picture or the new one, never a mix."""
    with write_transaction(engine, instance) as connection:
        for name, frame in replace.items():
            table = ANALYTICS_TABLES[name]
            connection.execute(sa.delete(table).where(table.c.instance == instance))
            if len(frame):
                connection.execute(sa.insert(table), _records(frame, instance))
        for name, frame in append.items():
            if len(frame):
                connection.execute(sa.insert(ANALYTICS_TABLES[name]), _records(frame, instance))
