"""One consistent picture of a Home Assistant: its registries and states, from one connection."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .client import HomeAssistantClient
from .errors import HomeAssistantStarting, ProtocolError

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


def fetch_snapshot(client: HomeAssistantClient) -> Snapshot:
    """Read `get_config` and every list over the client's one connection.

    Refuses (HomeAssistantStarting) unless HA is RUNNING: while it starts, `get_states` is
    incomplete even though the registries look complete.
    """
    started_at = datetime.now(UTC)
    timings: dict[str, float] = {}

    def timed(command: str) -> Any:
        started = time.perf_counter()
        result = client.command(command)
        timings[command] = time.perf_counter() - started
        return result

    config = timed("get_config")
    if not isinstance(config, dict):
        raise ProtocolError(f"unexpected payload: get_config returned {type(config).__name__}, not an object")
    if config.get("state") != "RUNNING":
        raise HomeAssistantStarting(str(config.get("state")))
    lists = {name: _list_of_objects(command, timed(command)) for name, command in LIST_COMMANDS.items()}
    return Snapshot(
        ha_version=str(config.get("version") or client.ha_version or "unknown"),
        location_name=config.get("location_name"),
        config=config,
        fetched_at=started_at,
        command_seconds=timings,
        **lists,
    )


def _list_of_objects(command: str, result: Any) -> list[JsonObject]:
    if not isinstance(result, list):
        raise ProtocolError(f"unexpected payload: {command} returned {type(result).__name__}, not a list")
    for index, item in enumerate(result):
        if not isinstance(item, dict):
            raise ProtocolError(
                f"unexpected payload: item {index} of {command} is {type(item).__name__}, not an object"
            )
    return result
