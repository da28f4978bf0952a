"""What the home looks like, computed with pandas from the live rows of the mirror.

Definitions (the README documents them):
- an integration is a config entry; its domain names the integration;
- a device's integration is its `config_entry_id` (HA 2026.8+; a child device has only that),
  else its `primary_config_entry`, else the first of its `config_entries`;
- an entity's integration is the domain of its `config_entry_id`, else its `platform` (YAML);
- an entity's effective area is its own `area_id`, else its device's;
- an entity is unavailable when its state is `unavailable`, unknown when it is `unknown`;
  availability % = states that are not `unavailable` / all states;
- integration health % = config entries in state `loaded` / all config entries (NULL without any).
Percentages are NULL, never 0, when there is nothing to divide by.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pandas as pd
import sqlalchemy as sa

from ..storage.schema import MIRRORED_BY_NAME, live

ENTRY_STATES = ("loaded", "setup_error", "setup_retry", "not_loaded", "failed_unload", "migration_error")
NO_AREA = "(no area)"


@dataclass(frozen=True)
class Mirror:
    """The live rows of one instance, as DataFrames with the columns analytics need."""

    devices: pd.DataFrame
    entities: pd.DataFrame
    areas: pd.DataFrame
    floors: pd.DataFrame
    config_entries: pd.DataFrame
    states: pd.DataFrame

    @cached_property
    def resolved(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Devices and entities with names, integration and areas resolved, computed once (read only)."""
        return _resolve(self)


COLUMNS = {
    "devices": (
        "id",
        "name_by_user",
        "name",
        "manufacturer",
        "model",
        "sw_version",
        "area_id",
        "via_device_id",
        "disabled_by",
        "config_entry_id",
        "primary_config_entry",
        "config_entries",
    ),
    "entities": ("id", "entity_id", "device_id", "area_id", "config_entry_id", "platform", "disabled_by", "hidden_by"),
    "areas": ("area_id", "name", "floor_id"),
    "floors": ("floor_id", "name", "level"),
    "config_entries": ("entry_id", "domain", "title", "state", "disabled_by"),
    "states": ("entity_id", "state", "last_changed"),
}


def load_mirror(connection: sa.Connection, instance: str) -> Mirror:
    frames = {}
    for field, columns in COLUMNS.items():
        table = MIRRORED_BY_NAME[f"ha_{field}"].table
        query = sa.select(*(table.c[c] for c in columns)).where(live(table, instance))
        # Plain tuples: pandas probes SQLAlchemy Row objects slowly, row by row.
        frames[field] = pd.DataFrame(list(map(tuple, connection.execute(query))), columns=list(columns))
    return Mirror(**frames)


def _device_entry_id(device: pd.Series) -> Any:
    if isinstance(device["config_entry_id"], str):
        return device["config_entry_id"]
    if isinstance(device["primary_config_entry"], str):
        return device["primary_config_entry"]
    entries = device["config_entries"]
    return entries[0] if isinstance(entries, list) and entries else None


def _percent(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def _resolve(m: Mirror) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Devices and entities with their integration, names, effective area and floor resolved."""
    entries = m.config_entries.set_index("entry_id")
    area_names = m.areas.set_index("area_id")["name"]
    floor_of_area = m.areas.set_index("area_id")["floor_id"]
    floor_names = m.floors.set_index("floor_id")["name"]

    devices = m.devices.copy()
    devices["display_name"] = devices["name_by_user"].where(devices["name_by_user"].notna(), devices["name"])
    devices["config_entry"] = devices.apply(_device_entry_id, axis=1) if len(devices) else None
    devices["integration"] = devices["config_entry"].map(entries["domain"])
    devices["integration_title"] = devices["config_entry"].map(entries["title"])
    devices["area_name"] = devices["area_id"].map(area_names)
    devices["floor_name"] = devices["area_id"].map(floor_of_area).map(floor_names)

    state_of = m.states.set_index("entity_id")["state"]
    entities = m.entities.copy()
    entities["integration"] = (
        entities["config_entry_id"].map(entries["domain"]).astype(object).fillna(entities["platform"])
    )
    entities["domain"] = entities["entity_id"].str.split(".", n=1).str[0]
    device_area = devices.set_index("id")["area_id"]
    entities["effective_area_id"] = entities["area_id"].astype(object).fillna(entities["device_id"].map(device_area))
    entities["area_name"] = entities["effective_area_id"].map(area_names)
    entities["floor_name"] = entities["effective_area_id"].map(floor_of_area).map(floor_names)
    entities["state"] = entities["entity_id"].map(state_of)
    entities["unavailable"] = entities["state"] == "unavailable"
    return devices, entities


def home_overview(m: Mirror, sync_run: dict[str, Any]) -> pd.DataFrame:
    entries = m.config_entries
    states = m.states["state"]
    unavailable = int((states == "unavailable").sum())
    loaded = int((entries["state"] == "loaded").sum())
    enabled = int(m.entities["disabled_by"].isna().sum())
    return pd.DataFrame(
        [
            {
                "sync_run_id": sync_run["id"],
                "synced_at": sync_run["finished_at"],
                "ha_version": sync_run["ha_version"],
                "devices": len(m.devices),
                "entities": len(m.entities),
                "entities_enabled": enabled,
                "entities_disabled": len(m.entities) - enabled,
                "areas": len(m.areas),
                "floors": len(m.floors),
                "integrations": len(entries),
                "integrations_loaded": loaded,
                "integration_health_pct": _percent(loaded, len(entries)),
                "entities_with_state": len(states),
                "unavailable_entities": unavailable,
                "unknown_entities": int((states == "unknown").sum()),
                "availability_pct": _percent(len(states) - unavailable, len(states)),
            }
        ]
    )


def integration_health(m: Mirror) -> pd.DataFrame:
    devices, entities = m.resolved
    entries = m.config_entries
    domains = sorted(set(entries["domain"].dropna()) | set(entities["integration"].dropna()))
    rows = []
    for domain in domains:
        mine = entries[entries["domain"] == domain]
        by_state = {state: int((mine["state"] == state).sum()) for state in ENTRY_STATES}
        active = mine[mine["disabled_by"].isna()]
        failing = active[active["state"] != "loaded"]
        if mine.empty:
            healthy, reason = None, "no config entry (set up in YAML)"
        elif active.empty:
            healthy, reason = None, "every config entry is disabled"
        elif failing.empty:
            healthy, reason = True, f"all {len(active)} enabled config entries loaded"
        else:
            states = ", ".join(
                f"{n} {s}" for s, n in failing["state"].fillna("unknown").value_counts().sort_index().items()
            )
            healthy, reason = False, f"{len(failing)} of {len(active)} enabled config entries not loaded: {states}"
        own_entities = entities[entities["integration"] == domain]
        rows.append(
            {
                "domain": domain,
                "config_entries": len(mine),
                **{f"entries_{state}": by_state[state] for state in ENTRY_STATES},
                "entries_other": len(mine) - sum(by_state.values()),
                "devices": int((devices["integration"] == domain).sum()),
                "entities": len(own_entities),
                "unavailable_entities": int(own_entities["unavailable"].sum()),
                "healthy": healthy,
                "reason": reason,
            }
        )
    frame = pd.DataFrame(rows, columns=INTEGRATION_HEALTH_COLUMNS)
    return frame.sort_values(["devices", "entities", "domain"], ascending=[False, False, True], ignore_index=True)


INTEGRATION_HEALTH_COLUMNS = [
    "domain",
    "config_entries",
    *(f"entries_{s}" for s in ENTRY_STATES),
    "entries_other",
    "devices",
    "entities",
    "unavailable_entities",
    "healthy",
    "reason",
]


def device_inventory(m: Mirror) -> pd.DataFrame:
    devices, entities = m.resolved
    per_device = entities.groupby("device_id").agg(entities=("id", "size"), unavailable_entities=("unavailable", "sum"))
    display_names = devices.set_index("id")["display_name"]
    frame = pd.DataFrame(
        {
            "device_id": devices["id"],
            "name": devices["display_name"],
            "manufacturer": devices["manufacturer"],
            "model": devices["model"],
            "sw_version": devices["sw_version"],
            "area_id": devices["area_id"],
            "area_name": devices["area_name"],
            "floor_name": devices["floor_name"],
            "integration": devices["integration"],
            "integration_title": devices["integration_title"],
            "via_device_id": devices["via_device_id"],
            "via_device_name": devices["via_device_id"].map(display_names),
            "entities": devices["id"].map(per_device["entities"]).fillna(0).astype(int),
            "unavailable_entities": devices["id"].map(per_device["unavailable_entities"]).fillna(0).astype(int),
            "disabled": devices["disabled_by"].notna(),
            "disabled_by": devices["disabled_by"],
        }
    )
    return frame.sort_values(["name", "device_id"], ignore_index=True, na_position="last")


def _state_table(m: Mirror) -> pd.DataFrame:
    """Every state, with its registry entry's integration, device and effective area where it has one."""
    devices, entities = m.resolved
    states = m.states.merge(
        entities[["entity_id", "integration", "device_id", "effective_area_id"]], on="entity_id", how="left"
    )
    states["domain"] = states["entity_id"].str.split(".", n=1).str[0]
    states["integration"] = states["integration"].astype(object).fillna("(no registry entry)")
    states["device_name"] = states["device_id"].map(devices.set_index("id")["display_name"])
    states["area_name"] = states["effective_area_id"].map(m.areas.set_index("area_id")["name"])
    return states


def entity_availability(m: Mirror) -> pd.DataFrame:
    states = _state_table(m)
    states["is_unavailable"] = states["state"] == "unavailable"
    states["is_unknown"] = states["state"] == "unknown"
    grouped = states.groupby(["domain", "integration"], as_index=False).agg(
        entities=("entity_id", "size"), unavailable=("is_unavailable", "sum"), unknown=("is_unknown", "sum")
    )
    grouped["availability_pct"] = [
        _percent(total - down, total) for total, down in zip(grouped["entities"], grouped["unavailable"], strict=True)
    ]
    return grouped.sort_values(["domain", "integration"], ignore_index=True)


def unavailable_entities(m: Mirror) -> pd.DataFrame:
    states = _state_table(m)
    down = states[states["state"] == "unavailable"]
    frame = down[
        ["entity_id", "integration", "device_id", "device_name", "effective_area_id", "area_name", "last_changed"]
    ]
    frame = frame.rename(columns={"effective_area_id": "area_id", "last_changed": "unavailable_since"})
    return frame.sort_values("entity_id", ignore_index=True)


def area_summary(m: Mirror) -> pd.DataFrame:
    devices, entities = m.resolved
    areas = m.areas.assign(floor_name=m.areas["floor_id"].map(m.floors.set_index("floor_id")["name"]))
    device_counts = devices["area_id"].value_counts()
    entity_counts = entities["effective_area_id"].value_counts()
    # A reference to an area that is gone counts as no area: every device and entity is counted once.
    device_placed = devices["area_id"].isin(areas["area_id"])
    entity_placed = entities["effective_area_id"].isin(areas["area_id"])
    frame = pd.DataFrame(
        {
            "area_id": areas["area_id"],
            "area_name": areas["name"],
            "floor_id": areas["floor_id"],
            "floor_name": areas["floor_name"],
            "devices": areas["area_id"].map(device_counts).fillna(0).astype(int),
            "entities": areas["area_id"].map(entity_counts).fillna(0).astype(int),
        }
    ).sort_values(["area_name", "area_id"], ignore_index=True)
    unplaced = {
        "area_id": None,
        "area_name": NO_AREA,
        "floor_id": None,
        "floor_name": None,
        "devices": int((~device_placed).sum()),
        "entities": int((~entity_placed).sum()),
    }
    return pd.concat([frame, pd.DataFrame([unplaced])], ignore_index=True)
