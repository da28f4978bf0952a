"""The fast tier's recorded fixture of each release still has the shape that real HA sends: same
commands, same fields per list. Recorded with scripts/record_fixtures.py's own `record()`, so the
recorder is exercised too. If this fails, re-record:
`python scripts/record_fixtures.py --start-real-ha --ha-version <version>`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .helpers import RealHomeAssistant, command, record_fixtures

pytestmark = pytest.mark.real_ha



def shape(recording: dict[str, Any]) -> dict[str, list[str]]:
    """Per command, the field names its result has: an object's keys, or the union of the keys
    of a list's entries (HA sends every field of every entry, so the union is each entry's)."""
    fields: dict[str, list[str]] = {}
    for name, result in recording["results"].items():
        entries = result if isinstance(result, list) else [result]
        fields[name] = sorted({key for entry in entries for key in entry})
    return fields


@pytest.fixture
def every_list_non_empty(ha: RealHomeAssistant) -> Iterator[None]:
    """A floor and a label for the length of the test: the demo has none, and an empty list has
    no fields to compare (the recorder's own furnish() adds them the same way)."""
    suffix = uuid.uuid4().hex[:8]
    floor = command(ha, "config/floor_registry/create", name=f"HomeIQ test floor {suffix}", level=9)
    label = command(ha, "config/label_registry/create", name=f"HomeIQ test label {suffix}")
    try:
        yield
    finally:
        command(ha, "config/floor_registry/delete", floor_id=floor["floor_id"])
        command(ha, "config/label_registry/delete", label_id=label["label_id"])


@pytest.mark.usefixtures("every_list_non_empty")
def test_a_recording_of_the_real_ha_has_the_committed_fixtures_shape(ha: RealHomeAssistant, ha_version: str) -> None:
    recording = record_fixtures.record(ha.url, ha.token)
    committed = json.loads((record_fixtures.DATA / f"ha-{ha_version}.json").read_text(encoding="utf-8"))
    assert recording["ha_version"] == committed["ha_version"] == ha_version
    assert all(recording["results"].values()) and all(committed["results"].values())  # nothing vacuous
    assert shape(recording) == shape(committed)
    # The recorder strips the machine's paths: the config dir shows as /config in both.
    assert recording["results"]["get_config"]["config_dir"] == committed["results"]["get_config"]["config_dir"]
