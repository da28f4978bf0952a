"""The Dagster code location: definitions load, the registry assets materialize from one snapshot
with metadata a person reads, the checks judge the mirror, the schedule and the sensor decide."""

import importlib
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from homeiq_pipeline import homeassistant as ha
from homeiq_pipeline.definitions import defs
from homeiq_pipeline.defs.analytics import assets as analytics_assets
from homeiq_pipeline.defs.home_assistant import assets as ha_assets
from homeiq_pipeline.defs import retries
from homeiq_pipeline.defs.home_assistant import checks, schedules, sensors
from homeiq_pipeline.defs.home_assistant.jobs import sync_home_assistant
from homeiq_pipeline.defs.home_assistant.resources import one_home
from homeiq_pipeline.defs.home_assistant.retries import fetch_trying_again
from homeiq_pipeline.defs.resources import MirrorDatabase
from homeiq_pipeline.homeassistant.reachability import ConnectionState
from homeiq_pipeline.settings import Settings
from homeiq_pipeline.storage import DEFAULT_INSTANCE as HOME
from homeiq_pipeline.storage.schema import MIRRORED_TABLES

from .fake_ha import FakeHomeAssistant
from .helpers import TOKEN, free_port
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
    assert asset.op.retry_policy is None  # it tries HA again itself, so a failed run says why first (below)
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


def step_failure(result: dg.ExecuteInProcessResult) -> tuple[str, dict[str, object]]:
    """What the UI shows first of the failed step, its error's message, and the failure's metadata;
    and that it carries no error chain (a second stack trace under it) and no retry."""
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    data = failure.step_failure_data
    assert data.error is not None and data.error.cause is None and data.user_failure_data is not None
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    (run_failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE]
    assert run_failure.job_failure_data.error == data.error  # the run's failure shows the same first line
    message = data.error.message.removeprefix("dagster._core.definitions.events.Failure: ")
    return message, {label: value.value for label, value in data.user_failure_data.metadata.items()}


def tries(count: int, first_pause: float) -> dict[str, object]:
    return {"ops": {"home_assistant_mirror": {"config": {"tries": count, "first_pause_seconds": first_pause}}}}


def test_a_run_that_cannot_reach_home_assistant_fails_with_the_cause_first(db_url: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [ha_assets.home_assistant_mirror],
            resources={"home_assistant": one_home(url, TOKEN), "mirror": MirrorDatabase(url=db_url)},
            partition_key=HOME,
            run_config=tries(3, 0.1),
            instance=instance,
            raise_on_error=False,
        )
        logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert not result.success
    message, metadata = step_failure(result)
    websocket = url.replace("http://", "ws://") + "/api/websocket"
    assert re.fullmatch(
        rf"cannot reach Home Assistant at {websocket} \(connecting\): \[Errno 111\] Connection refused "
        r"\(3 tries over 0\.\d s\)\n",
        message,
    ), message
    assert "max_retries" not in message
    assert metadata == {"cause": "unavailable", "tries": 3}
    pauses = [line.split("; trying again in ")[1] for line in logged if "; trying again in " in line]
    assert pauses == ["0.1 s", "0.2 s"]  # growing pauses


def test_home_assistant_is_tried_again_with_doubling_pauses_until_it_answers(fake_ha: FakeHomeAssistant) -> None:
    fake_ha.state = "STARTING"
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 2:
            fake_ha.state = "RUNNING"

    snapshot = fetch_trying_again(
        lambda: ha.HomeAssistantClient(fake_ha.url, TOKEN), tries=4, first_pause=10, log=lambda line: None, sleep=pause
    )
    assert pauses == [10, 20] and snapshot.counts()["states"] == len(fake_ha.results["get_states"])


def test_a_rejected_token_fails_the_run_at_once_and_never_shows_the_token(fake_ha: FakeHomeAssistant, db_url: str) -> None:
    secret = "rejected-secret-value-123"
    result = materialize(fake_ha, db_url, token=secret)
    assert not result.success
    assert fake_ha.auth_failures == 1  # no retry: repeated failures get HA to ban the address
    message, metadata = step_failure(result)
    assert message.startswith("Home Assistant rejected the access token: Invalid access token or password"), message
    assert "tries" not in message.split("(check HA_TOKEN")[0]
    assert metadata == {"cause": "authentication failed", "tries": 1}
    everything = "\n".join(repr(e) for e in result.all_events)
    assert secret not in everything


@pytest.mark.parametrize(
    ("duration", "shown"), [(0.04, "0.0 s"), (9.94, "9.9 s"), (12.4, "12 s"), (60, "1 min 0 s"), (104.2, "1 min 44 s")]
)
def test_durations_read_as_a_person_says_them(duration: float, shown: str) -> None:
    assert retries.duration(duration) == shown


# -- a run without a partition ------------------------------------------------------------------


def single_home_job(server: FakeHomeAssistant, db_url: str) -> dg.JobDefinition:
    """The sync job with the registry and analytics assets, as the code location has them for one home."""
    return dg.Definitions(
        assets=[ha_assets.home_assistant_mirror, analytics_assets.home_analytics],
        jobs=[sync_home_assistant],
        resources=resources(server, db_url),
    ).resolve_job_def(sync_home_assistant.name)


def test_with_one_home_a_run_without_a_partition_syncs_it(fake_ha: FakeHomeAssistant, db_url: str) -> None:
    result = single_home_job(fake_ha, db_url).execute_in_process()
    assert result.success
    assert result.dagster_run.tags["dagster/partition"] == HOME
    partitions = {(m.asset_key.to_user_string(), m.partition) for m in result.get_asset_materialization_events()}
    assert {asset for asset, _ in partitions} >= {*REGISTRY_ASSETS, "home_overview"}
    assert {partition for _, partition in partitions} == {HOME}  # never an unpartitioned materialization
    assert_mirror_equals_ha(sa.create_engine(db_url), fake_ha.results)


def test_a_partition_given_at_launch_is_the_one_the_run_syncs(fake_ha: FakeHomeAssistant, db_url: str) -> None:
    result = single_home_job(fake_ha, db_url).execute_in_process(partition_key=HOME)
    assert result.success and result.dagster_run.tags["dagster/partition"] == HOME


def test_dagster_job_execute_without_a_partition_syncs_the_one_home(fake_ha: FakeHomeAssistant, tmp_path: Path) -> None:
    """The command of the issue, as a person types it, in a process of its own."""
    db_url = f"sqlite:///{tmp_path / 'mirror.db'}"
    env = {name: value for name, value in os.environ.items() if name not in Settings.variables()}
    env.update(HA_URL=fake_ha.url, HA_TOKEN=TOKEN, HOMEIQ_DB_URL=db_url, DAGSTER_HOME=str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "job", "execute", "-m", "homeiq_pipeline.definitions",
         "-j", "sync_home_assistant"],
        cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "partition_key for a non-partitioned run" not in done.stdout + done.stderr
    assert_mirror_equals_ha(sa.create_engine(db_url), fake_ha.results)


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
    """Ticks the reconnect sensor against a server, carrying the cursor and the last run key like the
    daemon does: a tick that raises (a failed tick, red in the UI) leaves both as they were."""

    def __init__(self, server: FakeHomeAssistant, instance: dg.DagsterInstance, token: str = TOKEN) -> None:
        self.server, self.instance, self.token = server, instance, token
        self.cursor: str | None = None
        self.last_run_key: str | None = None

    def tick(self) -> dg.SensorResult | dg.RunRequest | dg.SkipReason:
        # As the daemon's code server builds it (build_sensor_context has no last run key).
        with dg.SensorEvaluationContext(
            instance_ref=None,
            cursor=self.cursor,
            last_run_key=self.last_run_key,
            instance=self.instance,
            resources={"home_assistant": one_home(self.server.url, self.token)},
            repository_def=defs().get_repository_def(),
        ) as context:
            result = sensors.home_assistant_reconnect.evaluate_tick(context)
        self.cursor = result.cursor
        self.last_run_key = next((r.run_key for r in reversed(result.run_requests or [])), self.last_run_key)
        return result

    def runs(self) -> list[dg.RunRequest]:
        return list(self.tick().run_requests or [])

    def failure(self) -> str:
        """The reason of a tick that fails, which must leave the cursor as it was."""
        before = self.cursor
        with pytest.raises(sensors.HomeNeedsAPerson) as failed:
            self.tick()
        assert self.cursor == before
        return str(failed.value)


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


def test_the_first_contact_requests_one_sync_then_says_what_it_sees(driver: SensorDriver, fake_ha: FakeHomeAssistant) -> None:
    (first,) = driver.runs()
    assert first.tags["homeiq/reason"] == "first contact"
    cursor = driver.cursor
    assert skip_message(driver) == f"home: reachable, HA {fake_ha.ha_version} RUNNING, unchanged"
    assert skip_message(driver) == f"home: reachable, HA {fake_ha.ha_version} RUNNING, unchanged"
    assert driver.cursor == cursor  # a look that finds HA as it was has nothing new to remember


def test_coming_back_after_being_unreachable_requests_one_sync(driver: SensorDriver, fake_ha: FakeHomeAssistant) -> None:
    (first,) = driver.runs()
    port = fake_ha.port
    fake_ha.stop()
    down = f"home: unreachable: cannot reach Home Assistant at ws://127.0.0.1:{port}/api/websocket (connecting): "
    assert skip_message(driver).startswith(down)
    assert skip_message(driver).startswith(down)  # not a failure: trying again later can help
    restarted = FakeHomeAssistant(token=TOKEN, port=port).start()
    try:
        driver.server = restarted
        (again,) = driver.runs()
        assert again.tags["homeiq/reason"] == "reconnected"
        assert again.run_key != first.run_key
        assert "unchanged" in skip_message(driver)
    finally:
        restarted.stop()


def test_each_change_is_an_observation_on_the_homes_connection_asset(driver: SensorDriver, fake_ha: FakeHomeAssistant) -> None:
    def observed() -> list[tuple[str, str | None, str | None, dict[str, object]]]:
        return [(e.asset_key.to_user_string(), e.partition, e.description, {k: v.value for k, v in e.metadata.items()})
                for e in driver.tick().asset_events]

    version = fake_ha.ha_version
    assert observed() == [("home_assistant_connection", HOME, f"reachable, HA {version} RUNNING, first contact: sync "
                           "requested", {"reachable": True, "ha_version": version, "state": "RUNNING", "problem": ""})]
    assert observed() == []  # unchanged: nothing new on the timeline
    fake_ha.stop()
    ((_, _, description, metadata),) = observed()
    assert description is not None and description.startswith("unreachable: cannot reach Home Assistant")
    assert metadata == {"reachable": False, "ha_version": version, "state": "", "problem": "unavailable"}
    assert observed() == []


def test_turning_running_after_starting_requests_a_sync(driver: SensorDriver, fake_ha: FakeHomeAssistant) -> None:
    fake_ha.state = "STARTING"
    assert skip_message(driver) == f"home: reachable, HA {fake_ha.ha_version} STARTING: waiting until it is RUNNING"
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


REJECTED = re.compile(
    r"home: token rejected: fix HA_TOKEN, then reset this sensor's cursor "
    r"\(not trying again before (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC\)"
)


def retry_after(reason: str) -> datetime:
    found = REJECTED.fullmatch(reason)
    assert found, reason
    return datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def test_a_rejected_token_fails_the_ticks_until_fixed_without_trying_it_again(
    driver: SensorDriver, fake_ha: FakeHomeAssistant
) -> None:
    (first,) = driver.runs()
    driver.token = "wrong-token-value-xyz"
    # The look that finds the token rejected has a pause to remember: a failed tick would lose it,
    # so this tick is skipped, saying why; every next one fails (red) with the same reason.
    seen = skip_message(driver)
    assert 299 <= (retry_after(seen) - datetime.now(UTC)).total_seconds() <= 301
    for _ in range(3):
        assert driver.failure() == seen
    assert fake_ha.auth_failures == 1  # tried once: repeated failures get HA to ban the address
    assert "wrong-token-value-xyz" not in (driver.cursor or "") + seen
    # Fixed, then the cursor reset (as the reason says): the next tick tries at once, and syncs:
    # its run key is not the first contact's before, which Dagster would not launch again.
    driver.token, driver.cursor = TOKEN, None
    (run,) = driver.runs()
    assert run.tags["homeiq/reason"] == "first contact" and run.run_key != first.run_key


def test_after_the_pause_the_token_is_tried_once_more_then_the_pause_doubles(
    driver: SensorDriver, fake_ha: FakeHomeAssistant
) -> None:
    driver.token = "wrong-token-value-xyz"
    ended = ConnectionState(reachable=False, auth_failures=1, auth_retry_after=(datetime.now(UTC) - timedelta(seconds=1)).isoformat())
    driver.cursor = json.dumps({HOME: ended.to_json()})
    seen = skip_message(driver)
    assert 599 <= (retry_after(seen) - datetime.now(UTC)).total_seconds() <= 601  # 10 minutes now
    assert driver.failure() == seen
    assert fake_ha.auth_failures == 1


def test_the_same_transition_has_the_same_run_key(driver: SensorDriver) -> None:
    """A tick evaluated twice from the same cursor (e.g. after a daemon crash) asks for the same run,
    which Dagster then launches once."""
    before = driver.cursor, driver.last_run_key
    (first,) = driver.runs()
    driver.cursor, driver.last_run_key = before  # the daemon keeps neither of a tick it did not finish
    (again,) = driver.runs()
    assert first.run_key is not None and first.run_key == again.run_key
