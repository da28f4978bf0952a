"""A large real home (the demo plus 5,000 generated registry entities, scripts/large_home.py) is
mirrored completely. It is a second HA, started for this module only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from homeiq_pipeline.homeassistant import LIST_COMMANDS

from ..mirror_checks import BY_FIELD, live_rows
from .helpers import (
    RealHomeAssistant,
    assert_mirror_equals_live_ha,
    assert_registries_unchanged,
    large_home,
    real_ha,
    start_or_fail,
    sync,
)

pytestmark = pytest.mark.real_ha

GENERATED_ENTITIES = 5_000


@pytest.fixture(scope="module")
def large_ha(hass_executable: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealHomeAssistant]:
    config_dir = tmp_path_factory.mktemp("ha-large")
    large_home.write_large_home(config_dir, real_ha.free_port(), GENERATED_ENTITIES)
    server = RealHomeAssistant(hass_executable, config_dir)
    try:
        start_or_fail(server)
        yield server
    finally:
        server.stop()


def test_a_home_with_5000_generated_entities_is_mirrored_completely(
    large_ha: RealHomeAssistant, engine: sa.Engine
) -> None:
    snapshot, result = sync(large_ha, engine)
    fresh = assert_mirror_equals_live_ha(engine, large_ha, snapshot)
    for snapshot_field, command in LIST_COMMANDS.items():
        spec = BY_FIELD[snapshot_field]
        assert len(live_rows(engine, spec)) == len(fresh[command]) == result.counts[spec.name].added, spec.name
    registry = fresh["config/entity_registry/list"]
    generated = [e for e in registry if str(e["unique_id"]).startswith("homeiq_large_")]
    assert len(generated) == GENERATED_ENTITIES
    assert {e["platform"] for e in generated} == {"template", "input_boolean", "input_number"}
    assert len(registry) > GENERATED_ENTITIES  # and the demo's own

    _, resync = sync(large_ha, engine)
    assert_registries_unchanged(resync)
    assert resync.counts["ha_entities"].unchanged == len(registry)
