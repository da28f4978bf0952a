"""Recompute every analytics table from the mirror's latest sync of an instance, and store them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa

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


def latest_picture(connection: sa.Connection, instance: str) -> tuple[dict[str, Any], compute.Mirror]:
    runs = recent_sync_runs(connection, instance, limit=1)
    if not runs:
        raise NoSyncYet(f"the mirror has no sync of instance {instance!r} yet: sync first")
    return runs[0], compute.load_mirror(connection, instance)


def refresh_analytics(engine: sa.Engine, instance: str) -> Refreshed:
    """Read the mirror once, compute every table from that one picture, write them atomically."""
    with engine.connect() as connection:
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
    write_analytics(
        engine,
        instance,
        replace={name: frame for name, frame in frames.items() if name not in HISTORY},
        append={name: frames[name] for name in HISTORY},
    )
    return Refreshed(run, frames)
