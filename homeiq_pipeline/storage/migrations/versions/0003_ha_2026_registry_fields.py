"""HA 2026 registry fields as columns, filled from each row's raw JSON

Home Assistant 2026.8-2026.11 added fields the mirror had kept only in `raw`:
- ha_devices: `config_subentry_id` (one config subentry per device), `next_name_part`;
- ha_entities: `next_name_part`;
- ha_config_entries: `error_reason_translation_domain`.
Each new column is filled from the rows' `raw` (live and removed rows alike), so a database synced
before this migration has the same columns as one synced after it: the sync rewrites only rows
whose content changed, and an unchanged row would otherwise keep NULL forever.

The backfill is one UPDATE per column using SQLAlchemy's JSON element access, which compiles to
`JSON_EXTRACT(raw, '$."field"')` on SQLite and `raw ->> 'field'` on PostgreSQL; both give the
text of a JSON string and SQL NULL for JSON null or a missing key.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 09:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column): every new column is text, as HA sends these fields as strings or null.
NEW_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ha_devices", "config_subentry_id"),
    ("ha_devices", "next_name_part"),
    ("ha_entities", "next_name_part"),
    ("ha_config_entries", "error_reason_translation_domain"),
)


def upgrade() -> None:
    for table_name, column in NEW_COLUMNS:
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            batch_op.add_column(sa.Column(column, sa.Text(), nullable=True))
    for table_name, column in NEW_COLUMNS:
        # A table as this migration knows it, not schema.py's (which keeps changing).
        table = sa.table(table_name, sa.column("raw", sa.JSON()), sa.column(column, sa.Text()))
        value = table.c.raw[column].as_string()
        op.execute(sa.update(table).where(value.is_not(None)).values({column: value}))


def downgrade() -> None:
    for table_name, column in reversed(NEW_COLUMNS):
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            batch_op.drop_column(column)
