"""Recompute every analytics table from the mirror's latest sync of an instance, and store them.

The picture of the latest sync (and the tables computed from it) is kept in memory until another
picture is read: the history step, which runs next in the same process, then reuses it instead of
reading and resolving 50,000 rows again. It is keyed by database, instance and sync run, so a newer
sync is always read afresh; memory stays at one snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa

from ..storage.database import read_snapshot
from ..storage.derived import write_analytics
from ..storage.queries import recent_sync_runs
from . import compute

HISTORY = ("home_overview",)  # appended each sync; the other tables are replaced


class NoSyncYet(Exception):
    """The mirror has no sync of this instance to compute from."""


@dataclass(frozen=True)
class Refreshed:
    sync_run: dict[str, Any]
    frames: dict[str, pd.DataFrame]  # table name without "analytics_" -> its rows


@dataclass
class _Kept:
    key: tuple[int, str, str, int]  # engine, database, instance, sync run id
    picture: compute.Mirror
    frames: dict[str, pd.DataFrame]


_kept: _Kept | None = None


def latest_picture(connection: sa.Connection, instance: str) -> tuple[dict[str, Any], compute.Mirror]:
    global _kept
    runs = recent_sync_runs(connection, instance, limit=1)
    if not runs:
        raise NoSyncYet(f"the mirror has no sync of instance {instance!r} yet: sync first")
    key = (id(connection.engine), str(connection.engine.url), instance, runs[0]["id"])
    if _kept is None or _kept.key != key:
        _kept = None  # free the old picture before reading the new one
        _kept = _Kept(key, compute.load_mirror(connection, instance), {})
    return runs[0], _kept.picture


def computed(picture: compute.Mirror, name: str) -> pd.DataFrame | None:
    """A table `refresh_analytics` computed from this very picture, if it did (read only)."""
    return _kept.frames.get(name) if _kept is not None and _kept.picture is picture else None


def refresh_analytics(engine: sa.Engine, instance: str) -> Refreshed:
    """Read the mirror once, compute every table from that one picture, write them atomically."""
    with read_snapshot(engine) as connection:
        run, picture = latest_picture(connection, instance)
    frames = {
        "home_overview": compute.home_overview(picture, run),
        "integration_health": compute.integration_health(picture),
        "device_inventory": compute.device_inventory(picture),
        "entity_availability": compute.entity_availability(picture),
        "unavailable_entities": compute.unavailable_entities(picture),
        "area_summary": compute.area_summary(picture),
    }
    frames["integration_health"].insert(0, "rank", range(1, len(frames["integration_health"]) + 1))
    if _kept is not None and _kept.picture is picture:
        _kept.frames.update(frames)
    write_analytics(
        engine,
        instance,
        replace={name: frame for name, frame in frames.items() if name not in HISTORY},
        append={name: frames[name] for name in HISTORY},
    )
    return Refreshed(run, frames)
