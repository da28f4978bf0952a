"""The whole code location `homeiq_pipeline`, name by name: its assets (with group, kinds and the
keys of their definition metadata), asset checks, jobs, schedules (with cron), sensors and
top-level resources. Any name added, removed or renamed fails here: the UI, the runs' history, the
watcher and people's bookmarks all go by these names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from homeiq_pipeline.definitions import defs
from homeiq_pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[1]

REGISTRY = {"group": "home_assistant", "kinds": ["homeassistant", "sqlite"],
            "metadata": ["dagster/column_schema", "dagster/table_name"]}
ANALYTICS = {"group": "analytics", "kinds": ["pandas", "sqlite"], "metadata": ["dagster/table_name"]}

EXPECTED: dict[str, Any] = {
    "assets": {
        "ha_areas": REGISTRY,
        "ha_config_entries": REGISTRY,
        "ha_devices": REGISTRY,
        "ha_entities": REGISTRY,
        "ha_floors": REGISTRY,
        "ha_labels": REGISTRY,
        "ha_states": REGISTRY,
        "home_assistant_connection": {"group": "home_assistant", "kinds": ["homeassistant"], "metadata": []},
        "area_summary": ANALYTICS,
        "device_inventory": ANALYTICS,
        "entity_availability": ANALYTICS,
        "home_overview": ANALYTICS,
        "integration_health": ANALYTICS,
        "unavailable_entities": ANALYTICS,
    },
    "asset_checks": {
        "area_summary": ["area_summary_counts_everything_once"],
        "device_inventory": ["device_names_are_resolved"],
        "entity_availability": ["availability_is_consistent"],
        "ha_config_entries": ["config_entries_are_not_empty"],
        "ha_devices": ["devices_are_not_empty"],
        "ha_entities": ["entity_ids_are_unique", "entity_references_are_live"],
        "ha_states": ["mirror_is_fresh"],
        "home_overview": ["overview_counts_match_the_mirror", "overview_percentages_are_in_range"],
        "integration_health": ["integration_health_counts_every_entry"],
    },
    "jobs": ["check_mirror_freshness", "sync_home_assistant"],
    "schedules": {"home_assistant_refresh": "0 * * * *", "mirror_freshness": "*/15 * * * *"},
    "sensors": ["home_assistant_reconnect"],
    "resources": ["home_assistant", "mirror"],
}
# With STORE_DEVICE_HISTORY_IN_INFLUXDB=true, the history asset and its resource too. Switched off
# (the default) they are not there at all: an asset that cannot be materialized would show as
# missing for ever, and "Materialize all" would select it and fail.
WITH_HISTORY: dict[str, Any] = {
    **EXPECTED,
    "assets": {**EXPECTED["assets"], "home_assistant_history": {"group": "history", "kinds": ["influxdb"], "metadata": []}},
    "resources": ["home_assistant", "influxdb", "mirror"],
}


def code_location() -> dict[str, Any]:
    """What `defs` defines, as names (in the shape of EXPECTED); fails if it does not load."""
    definitions = defs()
    dg.Definitions.validate_loadable(definitions)
    repository = definitions.get_repository_def()
    graph = repository.asset_graph
    assets = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assets[key.to_user_string()] = {"group": node.group_name, "kinds": sorted(node.kinds),
                                        "metadata": sorted(node.metadata)}
    checks: dict[str, list[str]] = {}
    for check in sorted(graph.asset_check_keys, key=lambda key: key.name):
        checks.setdefault(check.asset_key.to_user_string(), []).append(check.name)
    return {
        "assets": assets,
        "asset_checks": checks,
        "jobs": sorted(job.name for job in repository.get_all_jobs() if not job.name.startswith("__")),  # not Dagster's own
        "schedules": {schedule.name: schedule.cron_schedule for schedule in repository.schedule_defs},
        "sensors": sorted(sensor.name for sensor in repository.sensor_defs),
        "resources": sorted(repository.get_top_level_resources()),
    }


@pytest.mark.parametrize(("history", "expected"), [(None, EXPECTED), ("true", WITH_HISTORY)], ids=["default", "history on"])
def test_the_code_location_defines_exactly_these_names(history: str | None, expected: dict[str, Any]) -> None:
    # Loaded afresh in a process of its own with none of the settings' variables set: the kinds
    # and the refresh cron are read from the environment when the modules are imported.
    env = {name: value for name, value in os.environ.items() if name not in Settings.variables()}
    if history is not None:
        env["STORE_DEVICE_HISTORY_IN_INFLUXDB"] = history
    probe = "import json; from tests.test_code_location import code_location; print(json.dumps(code_location()))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1]) == expected
