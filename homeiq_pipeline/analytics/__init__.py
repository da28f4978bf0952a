"""Analytics computed from the mirror with pandas. No Dagster, no network."""

from .compute import (
    Mirror,
    area_summary,
    device_inventory,
    entity_availability,
    home_overview,
    integration_health,
    load_mirror,
    unavailable_entities,
)
from .picture import NoSyncYet, PictureCache, latest_picture
from .refresh import Refreshed, refresh_analytics

__all__ = [
    "Mirror",
    "NoSyncYet",
    "PictureCache",
    "Refreshed",
    "area_summary",
    "device_inventory",
    "entity_availability",
    "home_overview",
    "integration_health",
    "latest_picture",
    "load_mirror",
    "refresh_analytics",
    "unavailable_entities",
]
