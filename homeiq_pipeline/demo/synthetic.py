"""Synthetic homes of any size, shaped like HA 2025.4's payloads, for benchmarks and load tests."""

from __future__ import annotations

import random
from typing import Any

from .server import load_recording

DOMAINS = ("sensor", "light", "switch", "binary_sensor", "climate", "cover", "media_player")


def synthetic_results(devices: int, entities: int, states: int, *, seed: int = 1) -> dict[str, Any]:
    """Answers for every snapshot command (command -> result) describing a made-up home."""
    rng = random.Random(seed)
    recorded = load_recording()["results"]
    config_entries = [
        {
            **recorded["config_entries/get"][0],
            "entry_id": f"entry{i:04d}",
            "domain": f"integration_{i}",
            "title": f"Integration {i}",
        }
        for i in range(max(1, devices // 100))
    ]
    areas = [
        {**recorded["config/area_registry/list"][0], "area_id": f"area_{i}", "name": f"Area {i}"} for i in range(40)
    ]
    device_list = [
        {
            "area_id": rng.choice(areas)["area_id"] if rng.random() < 0.7 else None,
            "configuration_url": None,
            "config_entries": [entry := rng.choice(config_entries)["entry_id"]],
            "config_entries_subentries": {entry: [None]},
            "connections": [["mac", f"02:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"]],
            "created_at": 1700000000.0 + i,
            "disabled_by": None,
            "entry_type": None,
            "hw_version": None,
            "id": f"device{i:08d}",
            "identifiers": [["synthetic", f"device-{i}"]],
            "labels": [],
            "manufacturer": rng.choice(("Signify", "Aqara", "IKEA", "Shelly", None)),
            "model": f"Model {i % 37}",
            "model_id": None,
            "modified_at": 1700000000.0 + i,
            "name_by_user": None,
            "name": f"Device {i}",
            "primary_config_entry": entry,
            "serial_number": None,
            "sw_version": f"1.{i % 10}.0",
            "via_device_id": f"device{i // 50 * 50:08d}" if i % 50 else None,
        }
        for i in range(devices)
    ]
    entity_list = [
        {
            "area_id": None,
            "categories": {},
            "config_entry_id": config_entries[i % len(config_entries)]["entry_id"],
            "config_subentry_id": None,
            "created_at": 1700000000.0 + i,
            "device_id": f"device{i % devices:08d}" if devices and i % 4 else None,
            "disabled_by": "integration" if i % 97 == 0 else None,
            "entity_category": None,
            "entity_id": f"{DOMAINS[i % len(DOMAINS)]}.synthetic_{i}",
            "has_entity_name": True,
            "hidden_by": None,
            "icon": None,
            "id": f"{i:032x}",
            "labels": [],
            "modified_at": 1700000000.0 + i,
            "name": None,
            "options": {"conversation": {"should_expose": False}},
            "original_name": f"Entity {i}",
            "platform": config_entries[i % len(config_entries)]["domain"],
            "translation_key": None,
            "unique_id": f"synthetic-{i}",
        }
        for i in range(entities)
    ]
    state_list = [
        {
            "entity_id": f"{DOMAINS[i % len(DOMAINS)]}.synthetic_{i}",
            "state": str(round(rng.uniform(0, 100), 1)) if i % 13 else "unavailable",
            "attributes": {"friendly_name": f"Entity {i}", "unit_of_measurement": "°C"},
            "last_changed": "2026-11-27T06:51:39.685119+00:00",
            "last_reported": "2026-11-27T06:51:39.955998+00:00",
            "last_updated": "2026-11-27T06:51:39.685119+00:00",
            "context": {"id": f"ctx{i:023d}", "parent_id": None, "user_id": None},
        }
        for i in range(states)
    ]
    return {
        "get_config": {**recorded["get_config"], "location_name": f"Synthetic home ({entities} entities)"},
        "config/device_registry/list": device_list,
        "config/entity_registry/list": entity_list,
        "config/area_registry/list": areas,
        "config/floor_registry/list": recorded["config/floor_registry/list"],
        "config/label_registry/list": recorded["config/label_registry/list"],
        "config_entries/get": config_entries,
        "get_states": state_list,
    }
