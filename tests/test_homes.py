"""Many homes: homes.yaml is validated, each home is a partition, the sensor and the schedule ask
for the right homes, and one home's failure leaves every other home's rows alone."""

import importlib
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from homeiq_pipeline import settings
from homeiq_pipeline.homes import Home, HomesFileError, load_homes, resolve_homes
from homeiq_pipeline.settings import SettingsError
from homeiq_pipeline.storage.schema import MIRRORED_TABLES

from .fake_ha import FakeHomeAssistant
from .helpers import TOKEN

DEFS_MODULES = ("homeiq_pipeline.definitions", "homeiq_pipeline.defs")


def write_homes(path: Path, homes: list[dict[str, object]]) -> Path:
    path.write_text(yaml.safe_dump({"homes": homes}), encoding="utf-8")
    return path


# -- homes.yaml ---------------------------------------------------------------------------------


def test_a_homes_file_lists_each_home_with_its_own_token_variable_and_tls(tmp_path: Path) -> None:
    path = write_homes(
        tmp_path / "homes.yaml",
        [
            {"name": "home", "url": "https://ha.local:8123", "token_env": "HA_TOKEN"},
            {"name": "cabin", "url": "http://10.0.0.2:8123", "token_env": "HA_TOKEN_CABIN", "verify_tls": False},
            {"name": "flat_2", "url": "wss://flat.example/api/websocket", "token_env": "T", "ca_bundle": "/ca.pem"},
        ],
    )
    assert load_homes(path) == [
        Home(name="home", url="https://ha.local:8123", token_env="HA_TOKEN"),
        Home(name="cabin", url="http://10.0.0.2:8123", token_env="HA_TOKEN_CABIN", verify_tls=False),
        Home(name="flat_2", url="wss://flat.example/api/websocket", token_env="T", ca_bundle="/ca.pem"),
    ]


@pytest.mark.parametrize(
    ("homes", "message"),
    [
        ([], "non-empty list under `homes:`"),
        ([{"name": "a", "url": "http://x"}, {"name": "a", "url": "http://y"}], "unique, repeated: a"),
        ([{"name": "Cabin!", "url": "http://x"}], "name must be letters, digits"),
        ([{"name": "a", "url": "ftp://x"}], "not a Home Assistant URL"),
        ([{"name": "a", "url": "http://x", "token_env": "eyJhbGciOi.JIUzI1NiIsInR5cCI6"}], "must name an environment variable"),
        ([{"name": "a", "url": "http://x", "token": "abc"}], "unknown fields ['token']"),
        ([{"name": "a", "url": "http://x", "verify_tls": "no"}], "verify_tls must be true or false"),
        (["just a string"], "must be a mapping"),
    ],
)
def test_a_bad_homes_file_is_refused_with_where_and_why(tmp_path: Path, homes: list, message: str) -> None:
    path = write_homes(tmp_path / "homes.yaml", homes)
    with pytest.raises(HomesFileError) as refused:
        load_homes(path)
    assert message in str(refused.value) and str(path) in str(refused.value)
    assert "eyJhbGciOi" not in str(refused.value)  # a pasted token is not echoed


def test_missing_and_unparsable_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(HomesFileError, match="cannot read .*nowhere.yaml"):
        load_homes(tmp_path / "nowhere.yaml")
    (tmp_path / "broken.yaml").write_text("homes: [\n", encoding="utf-8")
    with pytest.raises(HomesFileError, match="broken.yaml is not valid YAML"):
        load_homes(tmp_path / "broken.yaml")


def test_without_a_homes_file_ha_url_and_ha_token_mean_one_home_called_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOMEIQ_HOMES_FILE", raising=False)
    monkeypatch.delenv("HOMEIQ_INSTANCE", raising=False)
    monkeypatch.setenv("HA_URL", "http://127.0.0.1:8123")
    assert resolve_homes(settings.current()) == [Home(name="home", url="http://127.0.0.1:8123", token_env="HA_TOKEN")]


# -- the code location with several homes -------------------------------------------------------


@pytest.fixture
def two_homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """Two fake HAs (`home`, `cabin`) in a homes.yaml, and the code location loaded from it afresh."""
    with FakeHomeAssistant(token=TOKEN) as home, FakeHomeAssistant(token="cabin-token-0987654321") as cabin:
        path = write_homes(
            tmp_path / "homes.yaml",
            [
                {"name": "home", "url": home.url, "token_env": "TEST_HOME_TOKEN"},
                {"name": "cabin", "url": cabin.url, "token_env": "TEST_CABIN_TOKEN"},
            ],
        )
        monkeypatch.setenv("HOMEIQ_HOMES_FILE", str(path))
        monkeypatch.setenv("TEST_HOME_TOKEN", TOKEN)
        monkeypatch.setenv("TEST_CABIN_TOKEN", "cabin-token-0987654321")
        monkeypatch.setenv("HOMEIQ_DB_URL", f"sqlite:///{tmp_path / 'mirror.db'}")
        with fresh_definitions() as definitions:
            yield SimpleNamespace(home=home, cabin=cabin, definitions=definitions, db_url=f"sqlite:///{tmp_path / 'mirror.db'}")


class fresh_definitions:
    """Import the code location again, so module-level settings (the homes) are read anew, and put
    the original modules back afterwards."""

    def __enter__(self) -> dg.Definitions:
        self.saved = {name: module for name, module in sys.modules.items() if name.startswith(DEFS_MODULES)}
        for name in self.saved:
            del sys.modules[name]
        try:
            return importlib.import_module("homeiq_pipeline.definitions").defs()
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc: object) -> None:
        for name in [name for name in sys.modules if name.startswith(DEFS_MODULES)]:
            del sys.modules[name]
        sys.modules.update(self.saved)


def job_and_repository(definitions: dg.Definitions) -> tuple[dg.JobDefinition, dg.RepositoryDefinition]:
    repository = definitions.get_repository_def()
    return repository.get_job("sync_home_assistant"), repository


def test_each_home_is_a_partition_and_each_token_stays_an_environment_variable(two_homes: SimpleNamespace) -> None:
    job, _repository = job_and_repository(two_homes.definitions)
    assert job.partitions_def is not None
    assert sorted(job.partitions_def.get_partition_keys()) == ["cabin", "home"]
    resource = two_homes.definitions.resources["home_assistant"]
    # What the UI shows of a token is the variable's name; the value is read at run time.
    assert [(home.name, home.token) for home in resource.homes] == [("home", "TEST_HOME_TOKEN"), ("cabin", "TEST_CABIN_TOKEN")]
    assert all(isinstance(home.token, dg.EnvVar) for home in resource.homes)
    assert "cabin-token-0987654321" not in repr(resource) and TOKEN not in repr(resource)


def run_partition(two_homes: SimpleNamespace, home: str) -> dg.ExecuteInProcessResult:
    job, _ = job_and_repository(two_homes.definitions)
    return job.execute_in_process(partition_key=home, raise_on_error=False)


def live_rows(db_url: str, home: str) -> dict[str, list[tuple]]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as connection:
            return {
                spec.name: connection.execute(
                    sa.select(spec.table).where(spec.table.c.instance == home).order_by(*spec.table.primary_key.columns)
                ).all()
                for spec in MIRRORED_TABLES
            }
    finally:
        engine.dispose()


def test_each_home_syncs_into_its_own_rows_and_one_homes_failure_leaves_the_others_alone(
    two_homes: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with two_homes.cabin.lock:  # tell the homes apart
        two_homes.cabin.results["config/device_registry/list"] = two_homes.cabin.results["config/device_registry/list"][:5]
    assert run_partition(two_homes, "home").success
    assert run_partition(two_homes, "cabin").success
    home_rows, cabin_rows = live_rows(two_homes.db_url, "home"), live_rows(two_homes.db_url, "cabin")
    assert len(home_rows["ha_devices"]) == len(two_homes.home.results["config/device_registry/list"])
    assert len(cabin_rows["ha_devices"]) == 5

    monkeypatch.setenv("TEST_CABIN_TOKEN", "no-longer-valid-token")  # the cabin's token is revoked
    with two_homes.home.lock:
        two_homes.home.results["config/area_registry/list"].append(
            {**two_homes.home.results["config/area_registry/list"][0], "area_id": "attic", "name": "Attic"}
        )
    failed = run_partition(two_homes, "cabin")
    assert not failed.success
    assert run_partition(two_homes, "home").success
    assert live_rows(two_homes.db_url, "cabin") == cabin_rows  # untouched by its own failure
    assert "attic" in {row.area_id for row in live_rows(two_homes.db_url, "home")["ha_areas"]}


class SensorTicks:
    """Ticks of the reconnect sensor over both homes, carrying the cursor like the daemon does: a
    tick that raises (a failed tick) leaves it as it was."""

    def __init__(self, two_homes: SimpleNamespace) -> None:
        _, self.repository = job_and_repository(two_homes.definitions)
        self.sensor = self.repository.get_sensor_def("home_assistant_reconnect")
        self.resource = two_homes.definitions.resources["home_assistant"]
        self.cursor: str | None = None

    def __call__(self) -> dg.SensorResult:
        with dg.instance_for_test() as instance:
            context = dg.build_sensor_context(
                cursor=self.cursor, instance=instance, resources={"home_assistant": self.resource},
                repository_def=self.repository,
            )
            result = self.sensor.evaluate_tick(context)
        self.cursor = result.cursor
        return result


def test_the_sensor_requests_a_sync_only_for_the_home_that_reconnected(two_homes: SimpleNamespace) -> None:
    ticks = SensorTicks(two_homes)

    def tick() -> list[dg.RunRequest]:
        return list(ticks().run_requests or [])

    first = tick()
    assert sorted((r.partition_key, r.tags["homeiq/sync"], r.tags["homeiq/reason"]) for r in first) == [
        ("cabin", "cabin", "first contact"),
        ("home", "home", "first contact"),
    ]
    assert tick() == []
    port = two_homes.cabin.port
    two_homes.cabin.stop()
    assert tick() == []  # the cabin is down; the home is unchanged
    with FakeHomeAssistant(token="cabin-token-0987654321", port=port):
        (again,) = tick()
    assert (again.partition_key, again.tags["homeiq/reason"]) == ("cabin", "reconnected")
    assert again.run_key is not None and again.run_key.startswith("cabin:")


def test_with_several_homes_a_run_without_a_partition_fails_naming_them(two_homes: SimpleNamespace) -> None:
    job, _ = job_and_repository(two_homes.definitions)
    result = job.execute_in_process(raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.step_key == "home_assistant_mirror"
    assert failure.step_failure_data.error.message == (
        "dagster._core.definitions.events.Failure: This run names no home, and this deployment mirrors 2: "
        "home, cabin. Launch it for one of them (its partition), e.g. "
        """`dagster job execute -j sync_home_assistant --tags '{"dagster/partition": "home"}'`.\n"""
    )
    assert two_homes.home.connections == two_homes.cabin.connections == 0


def test_one_homes_rejected_token_fails_the_sensors_ticks_but_never_holds_back_another_homes_sync(
    two_homes: SimpleNamespace,
) -> None:
    tick = SensorTicks(two_homes)
    version = two_homes.home.ha_version
    # The class of the code location imported afresh for these homes, not of the one imported first.
    HomeNeedsAPerson = importlib.import_module("homeiq_pipeline.defs.home_assistant.sensors").HomeNeedsAPerson

    assert len(tick().run_requests or []) == 2  # first contact with both
    two_homes.cabin.token = "only-the-new-token"  # the cabin's token was revoked in HA
    skipped = tick()
    assert not skipped.run_requests
    assert re.fullmatch(
        rf"home: reachable, HA {version} RUNNING, unchanged; cabin: token rejected: fix TEST_CABIN_TOKEN, then "
        r"reset this sensor's cursor \(not trying again before [-\d]+ [:\d]+ UTC\)",
        skipped.skip_message or "",
    ), skipped.skip_message
    with pytest.raises(HomeNeedsAPerson) as failed:
        tick()
    assert str(failed.value) == skipped.skip_message
    port = two_homes.home.port
    two_homes.home.stop()
    assert (tick().skip_message or "").startswith("home: unreachable: cannot reach Home Assistant")
    with FakeHomeAssistant(token=TOKEN, port=port):
        (again,) = tick().run_requests or []  # the home came back: its sync is requested all the same
        assert (again.partition_key, again.tags["homeiq/reason"]) == ("home", "reconnected")
        with pytest.raises(HomeNeedsAPerson, match="; cabin: token rejected: fix TEST_CABIN_TOKEN"):
            tick()
    assert two_homes.cabin.auth_failures == 1


def test_the_schedule_refreshes_every_home_once_per_tick(two_homes: SimpleNamespace) -> None:
    _, repository = job_and_repository(two_homes.definitions)
    schedule = repository.get_schedule_def("home_assistant_refresh")
    with dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 27, 8, tzinfo=UTC),
        resources={"home_assistant": two_homes.definitions.resources["home_assistant"]},
        repository_def=repository,
    ) as context:
        requests = list(schedule.evaluate_tick(context).run_requests or [])
    assert [(r.partition_key, r.tags["homeiq/sync"], r.tags["homeiq/trigger"]) for r in requests] == [
        ("home", "home", "schedule"),
        ("cabin", "cabin", "schedule"),
    ]


def test_a_cursor_from_before_homes_yaml_is_kept_for_the_first_home() -> None:
    from homeiq_pipeline.defs.home_assistant.sensors import _remembered
    from homeiq_pipeline.homeassistant.reachability import ConnectionState

    old = ConnectionState(reachable=True, state="RUNNING", version="2025.4.4", last_contact="2026-11-27T08:00:00+00:00")
    remembered = _remembered(old.to_json(), ["home", "cabin"])
    assert remembered == {"home": old, "cabin": ConnectionState()}


def test_a_bad_homes_file_stops_the_code_location_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_homes(tmp_path / "homes.yaml", [{"name": "home", "url": "http://x"}, {"name": "home", "url": "http://y"}])
    monkeypatch.setenv("HOMEIQ_HOMES_FILE", str(path))
    with pytest.raises(HomesFileError, match=r"home names must be unique, repeated: home"), fresh_definitions():
        pass


def test_a_yaml_error_says_where_without_quoting_the_line(tmp_path: Path) -> None:
    path = tmp_path / "homes.yaml"
    path.write_text("homes:\n  - name: home\n    url: http://x\n    token_env: [eyJsecretTokenValue\n", encoding="utf-8")
    with pytest.raises(HomesFileError) as refused:
        load_homes(path)
    assert "is not valid YAML at line" in str(refused.value) and "eyJsecretTokenValue" not in str(refused.value)


@pytest.mark.parametrize("name", ["a,b", "x" * 101, "living room"])
def test_an_instance_name_that_cannot_be_a_partition_is_refused(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.delenv("HOMEIQ_HOMES_FILE", raising=False)
    monkeypatch.setenv("HOMEIQ_INSTANCE", name)
    with pytest.raises(SettingsError, match="HOMEIQ_INSTANCE: expected a home name.*cannot name a home"):
        resolve_homes(settings.current())


@pytest.mark.parametrize("name", ["a,b", "x" * 101, "living room"])
def test_the_same_name_rule_holds_for_homes_yaml_and_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """A name Dagster's partitions would not have is refused by the CLI too, so it cannot write
    rows Dagster can never show."""
    from homeiq_pipeline import cli

    with pytest.raises(HomesFileError, match="name must be letters, digits, '-' or '_'"):
        load_homes(write_homes(tmp_path / "homes.yaml", [{"name": name, "url": "http://x"}]))
    monkeypatch.delenv("HOMEIQ_HOMES_FILE", raising=False)
    monkeypatch.setenv("HA_TOKEN", TOKEN)
    db_url = f"sqlite:///{tmp_path / 'mirror.db'}"
    for command in (["--instance", name, "sync", "--ha-url", "http://127.0.0.1:1"], ["watch", "--home", name]):
        assert cli.main(["--db-url", db_url, *command]) == cli.EXIT_CONFIG
        assert "letters, digits, '-' or '_'" in capsys.readouterr().err
    assert not (tmp_path / "mirror.db").exists()  # nothing was written
