"""The Dagster code location: definitions load, the registry assets materialize from one snapshot
with metadata a person reads, the checks judge the mirror, the schedule and the sensor decide."""

import importlib
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from homeiq_pipeline.definitions import defs
from homeiq_pipeline.defs.home_assistant import assets as ha_assets
from homeiq_pipeline.defs.home_assistant import checks, schedules, sensors
from homeiq_pipeline.defs.home_assistant.jobs import sync_home_assistant
from homeiq_pipeline.defs.home_assistant.resources import one_home
from homeiq_pipeline.defs.resources import MirrorDatabase
from homeiq_pipeline.storage import DEFAULT_INSTANCE as HOME
from homeiq_pipeline.storage.schema import MIRRORED_TABLES

from .fake_ha import FakeHomeAssistant
from .helpers import TOKEN
from .mirror_checks import assert_mirror_equals_ha

REGISTRY_ASSETS = [spec.name for spec in MIRRORED_TABLES]
ALL_CHECKS = [
    checks.entity_references_are_live,
    checks.entity_ids_are_unique,
    checks.devices_are_not_empty,
    checks.config_entries_are_not_empty,
    checks.mirror_is_fresh,
]


def resources(server: FakeHomeAssistant, db_url: str, token: str = TOKEN) -> dict[str, object]:
    return {
        "home_assistant": one_home(server.url, token),
        "mirror": MirrorDatabase(url=db_url),
    }


def materialize(server: FakeHomeAssistant, db_url: str, **options: object) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [ha_assets.home_assistant_mirror, *ALL_CHECKS],
        resources=resources(server, db_url, **options),  # type: ignore[arg-type]
        partition_key=HOME,
        raise_on_error=False,
    )


def test_registry_assets_are_grouped_and_share_one_pool() -> None:
    asset = ha_assets.home_assistant_mirror
    assert {key.to_user_string() for key in asset.keys} == set(REGISTRY_ASSETS)
    assert all(asset.group_names_by_key[key] == "home_assistant" for key in asset.keys)
    assert asset.op.pool == "home_assistant"
    assert asset.op.retry_policy is not None and asset.op.retry_policy.max_retries >= 1
    assert all("homeassistant" in spec.kinds for spec in asset.specs)


def test_one_run_materializes_every_table_from_one_snapshot_with_metadata(fake_ha: FakeHomeAssistant, db_url: str) -> None:
    result = materialize(fake_ha, db_url)
    assert result.success
    materializations = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    assert set(materializations) == set(REGISTRY_ASSETS)
    devices = materializations["ha_devices"].materialization.metadata
    expected_devices = len(fake_ha.results["config/device_registry/list"])
    assert devices["dagster/row_count"].value == expected_devices
    assert devices["added"].value == expected_devices and devices["removed"].value == 0
    assert devices["ha_version"].value == fake_ha.ha_version
    assert devices["ha_location_name"].value == fake_ha.results["get_config"]["location_name"]
    assert devices["duration_seconds"].value > 0
    first_device = sorted(d["id"] for d in fake_ha.results["config/device_registry/list"])[0]
    assert first_device in devices["preview"].value  # a Markdown table of the first rows
    # one snapshot: a single connection made every command once
    assert fake_ha.commands_seen.count("get_states") == 1
    assert len({m.materialization.metadata["sync_run_id"].value for m in materializations.values()}) == 1
    assert_mirror_equals_ha(sa.create_engine(db_url), fake_ha.results)


def test_checks_pass_on_a_faithful_mirror(fake_ha: FakeHomeAssistant, db_url: str) -> None:
    result = materialize(fake_ha, db_url)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {c.check_key.name for c in ALL_CHECKS}
    assert all(e.passed for e in evaluations.values()), {n: e.metadata for n, e in evaluations.items() if not e.passed}


def test_checks_fail_on_dangling_references_and_duplicate_entity_ids(fake_ha: FakeHomeAssistant, db_url: str) -> None:
    with fake_ha.lock:
        listed = fake_ha.results["config/entity_registry/list"]
        listed[0]["device_id"] = "no-such-device"
        listed[1]["area_id"] = "no-such-area"
        listed[2]["entity_id"] = listed[3]["entity_id"]
    result = materialize(fake_ha, db_url)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evaluations["entity_references_are_live"].passed
    assert evaluations["entity_references_are_live"].metadata["dangling_device_id"].value == 1
    assert evaluations["entity_references_are_live"].metadata["dangling_area_id"].value == 1
    assert not evaluations["entity_ids_are_unique"].passed
    assert evaluations["entity_ids_are_unique"].metadata["sample"].value == listed[3]["entity_id"]


def test_empty_registries_of_a_non_empty_home_fail_the_checks(fake_ha: FakeHomeAssistant, db_url: str) -> None:
    with fake_ha.lock:
        fake_ha.results["config/device_registry/list"] = []
        fake_ha.results["config_entries/get"] = []
    result = materialize(fake_ha, db_url)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evaluations["devices_are_not_empty"].passed
    assert not evaluations["config_entries_are_not_empty"].passed


def test_the_freshness_check_fails_when_the_last_sync_is_old(
    fake_ha: FakeHomeAssistant, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert materialize(fake_ha, db_url).success
    engine = sa.create_engine(db_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE ha_sync_runs SET finished_at = :t"), {"t": datetime.now(UTC) - timedelta(hours=3)})
    result = dg.materialize(
        [ha_assets.home_assistant_mirror, checks.mirror_is_fresh],
        selection=dg.AssetSelection.checks(checks.mirror_is_fresh),
        resources=resources(fake_ha, db_url),
        raise_on_error=False,
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.metadata["home"].value == HOME  # outside a sync: every home, here the one
    assert evaluation.metadata["age_minutes"].value >= 179


def test_a_rejected_token_fails_the_run_without_retries_and_never_shows_the_token(fake_ha: FakeHomeAssistant, db_url: str) -> None:
    secret = "rejected-secret-value-123"
    result = materialize(fake_ha, db_url, token=secret)
    assert not result.success
    assert fake_ha.auth_failures == 1  # no retry: repeated failures get HA to ban the address
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "Invalid access token or password" in str(failure.event_specific_data.error)
    everything = "\n".join(repr(e) for e in result.all_events)
    assert secret not in everything


def test_the_data_loss_guard_fails_the_run_and_force_in_run_config_passes(fake_ha: FakeHomeAssistant, db_url: str) -> None:
    assert materialize(fake_ha, db_url).success
    with fake_ha.lock:
        fake_ha.results["config/device_registry/list"] = []
    refused = materialize(fake_ha, db_url)
    assert not refused.success
    failure = next(e for e in refused.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "refusing to mark" in str(failure.event_specific_data.error) and "force" in str(failure.event_specific_data.error)
    forced = dg.materialize(
        [ha_assets.home_assistant_mirror],
        resources=resources(fake_ha, db_url),
        partition_key=HOME,
        run_config={"ops": {"home_assistant_mirror": {"config": {"force": True}}}},
    )
    devices = next(m for m in forced.get_asset_materialization_events() if m.asset_key.to_user_string() == "ha_devices")
    assert devices.materialization.metadata["dagster/row_count"].value == 0


# -- schedule -----------------------------------------------------------------------------------


def test_the_refresh_schedule_is_hourly_in_utc_by_default_and_on() -> None:
    schedule = schedules.home_assistant_refresh
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 * * * *", "UTC")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "sync_home_assistant"
    with dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 27, 8, tzinfo=UTC),
        resources={"home_assistant": one_home("http://127.0.0.1:1", TOKEN)},
        repository_def=defs().get_repository_def(),
    ) as context:
        (request,) = list(schedule.evaluate_tick(context).run_requests or [])
    assert request.partition_key == HOME
    assert request.tags["homeiq/sync"] == HOME and request.tags["homeiq/trigger"] == "schedule"


def test_the_refresh_schedule_reads_its_cron_and_timezone_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HA_REFRESH_CRON", "*/10 * * * *")
    monkeypatch.setenv("HA_TIMEZONE", "Europe/Berlin")
    try:
        reloaded = importlib.reload(schedules).home_assistant_refresh
        assert (reloaded.cron_schedule, reloaded.execution_timezone) == ("*/10 * * * *", "Europe/Berlin")
    finally:
        monkeypatch.undo()
        importlib.reload(schedules)


# -- sensor -------------------------------------------------------------------------------------


class SensorDriver:
    """Ticks the reconnect sensor against a server, carrying the cursor like the daemon does."""

    def __init__(self, server: FakeHomeAssistant, instance: dg.DagsterInstance, token: str = TOKEN) -> None:
        self.server, self.instance, self.token, self.cursor = server, instance, token, None

    def tick(self) -> dg.SensorResult | dg.RunRequest | dg.SkipReason:
        context = dg.build_sensor_context(
            cursor=self.cursor,
            instance=self.instance,
            resources={"home_assistant": one_home(self.server.url, self.token)},
            repository_def=defs().get_repository_def(),
        )
        result = sensors.home_assistant_reconnect.evaluate_tick(context)
        self.cursor = result.cursor
        return result

    def runs(self) -> list[dg.RunRequest]:
        return list(self.tick().run_requests or [])


@pytest.fixture
def driver(fake_ha: FakeHomeAssistant):
    with dg.instance_for_test() as instance:
        yield SensorDriver(fake_ha, instance)


def skip_message(driver: SensorDriver) -> str:
    result = driver.tick()
    assert not result.run_requests
    return result.skip_message or ""


def test_the_sensor_is_on_by_default_and_targets_the_sync_job() -> None:
    sensor = sensors.home_assistant_reconnect
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.job_name == sync_home_assistant.name
    assert sensor.minimum_interval_seconds == 30


def test_the_first_contact_requests_one_sync_then_nothing_while_unchanged(driver: SensorDriver) -> None:
    (first,) = driver.runs()
    assert first.tags["homeiq/reason"] == "first contact"
    assert "unchanged" in skip_message(driver)
    assert "unchanged" in skip_message(driver)


def test_coming_back_after_being_unreachable_requests_one_sync(driver: SensorDriver, fake_ha: FakeHomeAssistant) -> None:
    (first,) = driver.runs()
    port = fake_ha.port
    fake_ha.stop()
    assert "unreachable" in skip_message(driver)
    assert "unreachable" in skip_message(driver)
    restarted = FakeHomeAssistant(token=TOKEN, port=port).start()
    try:
        driver.server = restarted
        (again,) = driver.runs()
        assert again.tags["homeiq/reason"] == "reconnected"
        assert again.run_key != first.run_key
        assert "unchanged" in skip_message(driver)
    finally:
        restarted.stop()


def test_turning_running_after_starting_requests_a_sync(driver: SensorDriver, fake_ha: FakeHomeAssistant) -> None:
    fake_ha.state = "STARTING"
    assert "is STARTING: waiting until it is RUNNING" in skip_message(driver)
    fake_ha.state = "RUNNING"
    (run,) = driver.runs()
    assert run.tags["homeiq/reason"] == "started (STARTING -> RUNNING)"
    fake_ha.state = "STOPPING"
    assert "STOPPING" in skip_message(driver)
    fake_ha.state = "RUNNING"
    (run,) = driver.runs()
    assert run.tags["homeiq/reason"] == "started (STOPPING -> RUNNING)"


def test_a_version_change_requests_a_sync(driver: SensorDriver, fake_ha: FakeHomeAssistant) -> None:
    driver.runs()
    with fake_ha.lock:
        fake_ha.results["get_config"] = {**fake_ha.results["get_config"], "version": "2099.1.0"}
    (run,) = driver.runs()
    assert run.tags["homeiq/reason"] == f"upgraded ({fake_ha.ha_version} -> 2099.1.0)"


def test_a_bad_token_never_launches_runs_and_is_not_retried_in_a_loop(driver: SensorDriver, fake_ha: FakeHomeAssistant) -> None:
    driver.token = "wrong-token-value-xyz"
    message = skip_message(driver)
    assert "rejected the access token" in message and "wrong-token-value-xyz" not in message
    for _ in range(5):
        assert "not trying again before" in skip_message(driver)
    assert fake_ha.auth_failures == 1
    assert "wrong-token-value-xyz" not in (driver.cursor or "")


def test_the_same_transition_has_the_same_run_key(driver: SensorDriver) -> None:
    """A tick evaluated twice from the same cursor (e.g. after a daemon crash) asks for the same run,
    which Dagster then launches once."""
    before = driver.cursor
    (first,) = driver.runs()
    driver.cursor = before
    (again,) = driver.runs()
    assert first.run_key is not None and first.run_key == again.run_key
