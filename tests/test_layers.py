"""Data flows one way (HA -> homeassistant -> storage -> analytics and history): the storage, the
analytics and the history import neither the websocket client nor Dagster."""

import json
import subprocess
import sys

LOADED = """
import json, sys
import homeiq_pipeline.storage, homeiq_pipeline.analytics, homeiq_pipeline.history, homeiq_pipeline.snapshot
print(json.dumps(sorted(sys.modules)))
"""


def test_storage_analytics_and_history_load_without_the_client_or_dagster() -> None:
    # A process of its own: this one has imported everything the other tests use.
    child = subprocess.run([sys.executable, "-c", LOADED], capture_output=True, text=True, check=True)
    loaded = set(json.loads(child.stdout))
    assert {"homeiq_pipeline.storage", "homeiq_pipeline.analytics", "homeiq_pipeline.history"} <= loaded  # not vacuous
    for module in ("websocket", "dagster", "homeiq_pipeline.homeassistant"):
        assert module not in loaded, module
