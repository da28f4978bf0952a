"""Recompute every analytics table from the mirror's latest sync of an instance, and store them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa

from ..storage.database import read_snapshot
from ..storage.derived import write_analytics
from . import compute
from .picture import PictureCache, latest_picture

HISTORY = ("home_overview",)  # appended each sync; the other tables are replaced


@dataclass(frozen=True)
class Refreshed:
    sync_run: dict[str, Any]
    frames: dict[str, pd.DataFrame]  # table name without "analytics_" -> its rows


def refresh_analytics(engine: sa.Engine, instance: str, cache: PictureCache | None = None) -> Refreshed:
    """Read the mirror once, compute every table from that one picture, write them atomically.
    With a `cache`, the picture and the tables stay in it for the run's later steps (history)."""
    with read_snapshot(engine) as connection:
        run, picture = latest_picture(connection, instance, cache)
    frames = {
        "home_overview": compute.home_overview(picture, run),
        "integration_health": compute.integration_health(picture),
        "device_inventory": compute.device_inventory(picture),
        "entity_availability": compute.entity_availability(picture),
        "unavailable_entities": compute.unavailable_entities(picture),
        "area_summary": compute.area_summary(picture),
    }
    frames["integration_health"].insert(0, "rank", range(1, len(frames["integration_health"]) + 1))
    if cache is not None:
        cache.keep_computed(picture, frames)
    write_analytics(
        engine,
        instance,
        replace={name: frame for name, frame in frames.items() if name not in HISTORY},
        append={name: frames[name] for name in HISTORY},
    )
    return Refreshed(run, frames)
