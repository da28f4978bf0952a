"""Reading one consistent picture of a Home Assistant (a `Snapshot`) over one connection."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from ..snapshot import LIST_COMMANDS, JsonObject, Snapshot
from .client import HomeAssistantClient
from .errors import HomeAssistantStarting, ProtocolError


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
