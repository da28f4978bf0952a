"""The picture of the mirror the analytics compute from: the live rows as of the instance's latest
sync, and a cache that lets the steps of one run share it.

Reading and resolving 50,000 rows takes longer than computing every table from them, so the
history step, which runs after the analytics in the same run, reuses their picture (and the tables
computed from it) through the run's `PictureCache` instead of reading it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa

from ..storage.queries import recent_sync_runs
from . import compute


class NoSyncYet(Exception):
    """The mirror has no sync of this instance to compute from."""


@dataclass
class _Kept:
    key: tuple[int, str, str, int]  # engine, database, instance, sync run id
    picture: compute.Mirror
    frames: dict[str, pd.DataFrame]


class PictureCache:
    """At most one picture of the mirror, with the tables computed from it, for the steps of one run.

    A picture is served again only for the same engine, database, instance and sync run, so a
    newer sync, another instance or another database is read afresh; the old picture is dropped
    before the new one is read, so memory stays at one snapshot.
    """

    def __init__(self) -> None:
        self._kept: _Kept | None = None

    def picture(self, connection: sa.Connection, instance: str, sync_run_id: int) -> compute.Mirror:
        """The picture of `instance` as sync run `sync_run_id` left it: kept, or read on `connection`."""
        key = (id(connection.engine), str(connection.engine.url), instance, sync_run_id)
        if self._kept is None or self._kept.key != key:
            self._kept = None  # free the old picture before reading the new one
            self._kept = _Kept(key, compute.load_mirror(connection, instance), {})
        return self._kept.picture

    def computed(self, picture: compute.Mirror) -> Mapping[str, pd.DataFrame]:
        """The tables kept as computed from this very picture, by name (read only; empty if none)."""
        return self._kept.frames if self._kept is not None and self._kept.picture is picture else {}

    def keep_computed(self, picture: compute.Mirror, frames: Mapping[str, pd.DataFrame]) -> None:
        """Keep tables computed from `picture`, if it is the picture held."""
        if self._kept is not None and self._kept.picture is picture:
            self._kept.frames.update(frames)


def latest_picture(
    connection: sa.Connection, instance: str, cache: PictureCache | None = None
) -> tuple[dict[str, Any], compute.Mirror]:
    """The instance's latest successful sync run, and the picture of the mirror it left: from
    `cache` if it holds that very picture, else read on `connection` (and kept in `cache`)."""
    runs = recent_sync_runs(connection, instance, limit=1)
    if not runs:
        raise NoSyncYet(f"the mirror has no sync of instance {instance!r} yet: sync first")
    run = runs[0]
    if cache is None:
        return run, compute.load_mirror(connection, instance)
    return run, cache.picture(connection, instance, run["id"])
