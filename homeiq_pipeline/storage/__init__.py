"""The SQL mirror: tables, migrations and the one-transaction snapshot sync. No network, no Dagster."""

from .database import (
    create_engine,
    missing_sqlite_file,
    open_database,
    read_snapshot,
    safe_url,
    upgrade,
    write_transaction,
)
from .errors import DataLossRefused, StorageError, UnexpectedPayload
from .schema import MIRRORED_TABLES, MirroredTable, metadata, registry_changes, sync_runs
from .sync import DEFAULT_INSTANCE, DEFAULT_MAX_REMOVED_SHARE, SyncResult, TableCounts, sync_snapshot

__all__ = [
    "DEFAULT_INSTANCE",
    "DEFAULT_MAX_REMOVED_SHARE",
    "MIRRORED_TABLES",
    "DataLossRefused",
    "MirroredTable",
    "StorageError",
    "SyncResult",
    "TableCounts",
    "UnexpectedPayload",
    "create_engine",
    "metadata",
    "missing_sqlite_file",
    "open_database",
    "read_snapshot",
    "registry_changes",
    "safe_url",
    "sync_runs",
    "sync_snapshot",
    "upgrade",
    "write_transaction",
]
