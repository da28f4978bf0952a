"""What HA announced, and the sync it is owed: events in, one short reason out.

HA (2025.4.4, checked in its source) sends, per `subscribe_events` subscription,
`{"id", "type": "event", "event": {"event_type", "data": {"action", "<kind>_id", ...}, ...}}`
with `action` create / update / remove; `config_entries/subscribe` sends first the current list
(`[{"type": None, "entry": ...}, ...]`) and then changes (`type` added / removed / updated).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# The registry events a sync mirrors; none needs admin rights (HA's SUBSCRIBE_ALLOWLIST).
REGISTRY_EVENTS: tuple[str, ...] = (
    "device_registry_updated",
    "entity_registry_updated",
    "area_registry_updated",
    "floor_registry_updated",
    "label_registry_updated",
)
CONFIG_ENTRIES_SUBSCRIBE = "config_entries/subscribe"

# (command, payload) per subscription, in the order they are made.
SUBSCRIPTIONS: tuple[tuple[str, dict[str, str]], ...] = (
    *(("subscribe_events", {"event_type": event}) for event in REGISTRY_EVENTS),
    (CONFIG_ENTRIES_SUBSCRIBE, {}),
)

MAX_REASON_LENGTH = 200  # a Dagster tag value stays readable in the UI


@dataclass(frozen=True)
class Change:
    """One announced change, counted by what and how: ("area_registry", "create")."""

    source: str
    action: str

    def __str__(self) -> str:
        return f"{self.source} {self.action}"


def describe(subscribed_to: str, message: dict[str, Any]) -> list[Change]:
    """The changes one event message announces ([] for the config entries' initial list)."""
    event = message.get("event")
    if subscribed_to == CONFIG_ENTRIES_SUBSCRIBE:
        items = event if isinstance(event, list) else []
        # type None marks the current list HA sends right after subscribing: not a change.
        return [
            Change("config_entries", str(item["type"]))
            for item in items
            if isinstance(item, dict) and item.get("type") is not None
        ]
    data = event.get("data") if isinstance(event, dict) else None
    action = data.get("action") if isinstance(data, dict) else None
    source = subscribed_to.removesuffix("_updated")
    return [Change(source, str(action or "changed"))]


@dataclass
class PendingSync:
    """A sync owed to HA: why, and since when (monotonic seconds)."""

    since: float
    last_change: float
    why: list[str] = field(default_factory=list)  # "connected", "reconnected"
    changes: Counter[Change] = field(default_factory=Counter)

    def add(self, changes: list[Change], now: float) -> None:
        self.changes.update(changes)
        self.last_change = now

    def due(self, now: float, debounce: float, max_delay: float) -> bool:
        """Quiet for `debounce` seconds since the last change, or waiting `max_delay` already
        (so a steady stream of changes cannot postpone the sync forever)."""
        return now - self.last_change >= debounce or now - self.since >= max_delay

    def reason(self) -> str:
        parts = list(self.why)
        parts += [
            f"{change} x{count}" if count > 1 else str(change)
            for change, count in sorted(self.changes.items(), key=lambda item: (item[0].source, item[0].action))
        ]
        text = ", ".join(parts) or "changes"
        return text if len(text) <= MAX_REASON_LENGTH else text[: MAX_REASON_LENGTH - 3] + "..."
