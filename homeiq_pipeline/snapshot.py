"""One consistent picture of a Home Assistant, as the client reads it and the storage stores it.

Standard library only: the storage and the analytics import this without loading the websocket client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JsonObject = dict[str, Any]

# Snapshot field -> the websocket command that lists it (all readable without admin rights).
# Integrations are config entries: `config_entries/get` (there is no `config_entries/list`).
LIST_COMMANDS: dict[str, str] = {
    "devices": "config/device_registry/list",
    "entities": "config/entity_registry/list",
    "areas": "config/area_registry/list",
    "floors": "config/floor_registry/list",
    "labels": "config/label_registry/list",
    "config_entries": "config_entries/get",
    "states": "get_states",
}


@dataclass(frozen=True)
class Snapshot:
    """Everything one sync stores, as HA sent it (lists of HA's own JSON objects)."""

    ha_version: str
    location_name: str | None
    config: JsonObject
    devices: list[JsonObject]
    entities: list[JsonObject]
    areas: list[JsonObject]
    floors: list[JsonObject]
    labels: list[JsonObject]
    config_entries: list[JsonObject]
    states: list[JsonObject]
    fetched_at: datetime = field(default_factory=lambda: datetime.now(UTC))  # when the fetch began
    command_seconds: dict[str, float] = field(default_factory=dict, compare=False)

    def counts(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in LIST_COMMANDS}
