"""Every place that names the code location, the job or the run tags agrees with
homeiq_pipeline/names.py: the workspace the launcher and the image use, pyproject.toml, the
package's dg.toml, the instance's queue limits (dagster.yaml) and the definitions themselves."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

from homeiq_pipeline import names
from homeiq_pipeline.definitions import defs

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "homeiq_pipeline"


def test_the_code_location_has_one_name_everywhere() -> None:
    (entry,) = yaml.safe_load((PACKAGE / "workspace.yaml").read_text())["load_from"]
    assert entry["python_module"] == {"module_name": names.DEFINITIONS_MODULE, "location_name": names.LOCATION}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
    assert pyproject["dagster"] == {"module_name": names.DEFINITIONS_MODULE, "code_location_name": names.LOCATION}
    assert pyproject["dg"]["project"]["code_location_name"] == names.LOCATION
    assert tomllib.loads((PACKAGE / "dg.toml").read_text())["project"]["code_location_name"] == names.LOCATION


def test_the_queue_limits_name_the_tags_the_runs_carry() -> None:
    limits = yaml.safe_load((PACKAGE / "dagster.yaml").read_text())["concurrency"]["runs"]["tag_concurrency_limits"]
    assert [(limit["key"], limit["limit"], limit["value"]) for limit in limits] == [
        (names.SYNC_TAG, 1, {"applyLimitPerUniqueValue": True}),
        (names.PARTITION_TAG, 1, {"applyLimitPerUniqueValue": True}),
    ]


def test_the_definitions_use_the_names() -> None:
    repository = defs().get_repository_def()
    assert {names.SYNC_JOB, names.FRESHNESS_JOB} <= set(repository.job_names)
    groups = {spec.group_name for spec in defs().resolve_all_asset_specs()}
    assert groups == {names.HOME_ASSISTANT_GROUP, names.ANALYTICS_GROUP}  # the history is there only when on
    from homeiq_pipeline.defs.home_assistant.assets import home_assistant_mirror
    from homeiq_pipeline.defs.influxdb.assets import home_assistant_history

    assert home_assistant_mirror.op.pool == names.POOL
    assert set(home_assistant_history.group_names_by_key.values()) == {names.HISTORY_GROUP}
