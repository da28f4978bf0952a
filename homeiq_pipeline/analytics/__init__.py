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

__all__ = [
    "Mirror",
    "area_summary",
    "device_inventory",
    "entity_availability",
    "home_overview",
    "integration_health",
    "load_mirror",
    "unavailable_entities",
]
