"""HA's integer fields as 64-bit integers on PostgreSQL too

`ha_floors.level` and `ha_config_entries.num_subentries` were INTEGER: 64-bit on SQLite but
32-bit on PostgreSQL, so a value SQLite stores was refused on PostgreSQL. Both are BIGINT now.
PostgreSQL widens the columns in place. On SQLite, whose INTEGER already holds 64 bits, only the
declared type changes (batch mode copies these two small tables), so the schema matches the
models on both.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 11:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS: tuple[tuple[str, str], ...] = (("ha_floors", "level"), ("ha_config_entries", "num_subentries"))


def _retype(new: type[sa.types.TypeEngine], old: type[sa.types.TypeEngine]) -> None:
    for table, column in COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, type_=new(), existing_type=old(), existing_nullable=True)


def upgrade() -> None:
    _retype(sa.BigInteger, sa.Integer)


def downgrade() -> None:
    _retype(sa.Integer, sa.BigInteger)
