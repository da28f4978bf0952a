"""Sync in the watcher's own process instead of through Dagster (`homeiq-pipeline watch --direct`):
the same snapshot and transaction as `homeiq-pipeline sync`, for setups without Dagster."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from .. import homeassistant as ha
from .. import storage
from .loop import Refused, TryLater


@dataclass
class DirectSyncs:
    connect: Callable[[], ha.HomeAssistantClient]
    db_url: str

    def waiting_sync(self, home: str) -> str | None:
        return None  # a direct sync runs to its end before the watcher reads on

    def launch_sync(self, home: str, tags: dict[str, str]) -> str:
        try:
            with self.connect() as client:
                snapshot = ha.fetch_snapshot(client)
        except ha.HomeAssistantError as exc:
            if exc.cause.settings_must_change:
                raise  # retrying cannot fix it: the watcher stops
            raise (TryLater if exc.cause.retry_can_help else Refused)(str(exc)) from exc
        try:
            engine = storage.open_database(self.db_url)
            try:
                result = storage.sync_snapshot(engine, snapshot, instance=home)
            finally:
                engine.dispose()
        except storage.StorageError as exc:
            raise Refused(f"{exc}; nothing was written") from exc
        except sa.exc.SQLAlchemyError as exc:  # locked, unreachable, out of space: the database may recover
            cause = getattr(exc, "orig", None) or exc
            raise TryLater(f"database error at {storage.safe_url(self.db_url)}: {cause}") from exc
        return f"direct-{result.run_id}"
