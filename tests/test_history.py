"""The optional InfluxDB history against a real line-protocol server (Debian's VictoriaMetrics, which
accepts influxdb-client's v2 writes), behind a small proxy that records what was sent: VictoriaMetrics
keeps numbers only, so string fields are checked in the recorded line protocol."""

from datetime import UTC, datetime, timedelta
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from homeiq_pipeline import settings
from homeiq_pipeline.definitions import defs
from homeiq_pipeline.defs.home_assistant import assets as ha_assets
from homeiq_pipeline.defs.influxdb import assets as history_assets
from homeiq_pipeline.defs.influxdb.resources import InfluxDBResource
from homeiq_pipeline.defs.home_assistant.resources import one_home
from homeiq_pipeline.defs.resources import MirrorDatabase
from homeiq_pipeline.storage import DEFAULT_INSTANCE as HOME

from .fake_ha import FakeHomeAssistant
from .helpers import TOKEN, free_port, wait_for
from .servers import missing

INFLUX_TOKEN = "influx-secret-token-42"


def _victoria_metrics(tmp: Path, *flags: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("victoria-metrics")
    if binary is None:
        missing("VictoriaMetrics is not installed (Debian: apt-get install victoria-metrics); the history tests need it")
    port = free_port()
    process = subprocess.Popen(
        [binary, f"-httpListenAddr=127.0.0.1:{port}", f"-storageDataPath={tmp}", "-retentionPeriod=100y",
         "-search.latencyOffset=0s", *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for("VictoriaMetrics", lambda: _answers(f"{url}/health"), timeout=30, every=0.1)
    return process, url


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture  # one per test: each test's series start empty
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # One sample per series and millisecond, as InfluxDB keeps one point per series and time.
    process, url = _victoria_metrics(tmp_path_factory.mktemp("vm"), "-dedup.minScrapeInterval=1ms")
    yield url
    process.terminate()
    process.wait(10)


class Recorder(ThreadingHTTPServer):
    """Forwards InfluxDB writes to `upstream` and keeps their bodies; can answer an error instead."""

    def __init__(self, upstream: str) -> None:
        self.upstream, self.bodies, self.fail_with = upstream, [], None
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def lines(self) -> list[str]:
        return [line for body in self.bodies for line in body.decode().splitlines()]


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.server.fail_with:
            status, message = self.server.fail_with
            self._answer(status, json.dumps({"code": "error", "message": message}).encode())
            return
        self.server.bodies.append(body)
        request = urllib.request.Request(f"{self.server.upstream}{self.path}", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            self._answer(response.status, response.read())

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder(victoria: str) -> Iterator[Recorder]:
    server = Recorder(victoria)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def export(victoria: str, instance: str) -> list[dict]:
    """Every sample of `instance`, once the answer stops growing (new series take a moment)."""
    query = urllib.parse.urlencode({"match[]": f'{{__name__=~"ha_.*",instance="{instance}"}}'})
    seen: list[list[dict]] = []

    def settled() -> list[dict] | None:
        urllib.request.urlopen(f"{victoria}/internal/force_flush").read()
        with urllib.request.urlopen(f"{victoria}/api/v1/export?{query}") as response:
            seen.append(sorted((json.loads(line) for line in response.read().decode().splitlines()), key=json.dumps))
        return seen[-1] if len(seen) >= 3 and seen[-1] and seen[-1] == seen[-2] == seen[-3] else None

    return wait_for(f"the series of {instance!r} in VictoriaMetrics", settled, timeout=30, every=0.3)


@pytest.fixture
def history_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORE_DEVICE_HISTORY_IN_INFLUXDB", "true")  # read when the code location loads


def run_sync(
    server: FakeHomeAssistant, db_url: str, influx_url: str, token: str = INFLUX_TOKEN, run_config: dict | None = None
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [ha_assets.home_assistant_mirror, history_assets.home_assistant_history],
        resources={
            "home_assistant": one_home(server.url, TOKEN),
            "mirror": MirrorDatabase(url=db_url),
            "influxdb": InfluxDBResource(url=influx_url, token=token, org="homeiq", bucket="home", timeout_seconds=5),
        },
        partition_key=HOME,
        raise_on_error=False,
        run_config=run_config,
    )


def synced_by_the_sync_job() -> tuple[set[str], set[str]]:
    """The code location's assets, and those its sync job materializes."""
    repository = defs().get_repository_def()
    job = repository.get_job("sync_home_assistant")
    assets = {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()}
    return assets, {key.to_user_string() for key in job.asset_layer.selected_asset_keys}


def test_history_is_off_by_default_and_then_not_in_the_code_location() -> None:
    """Switched off it could never be materialized: present, it would show as missing for ever."""
    assert not settings.current().history_enabled
    assets, synced = synced_by_the_sync_job()
    assert "home_assistant_history" not in assets and {"ha_devices", "home_overview"} <= synced <= assets
    assert "influxdb" not in defs().get_repository_def().get_top_level_resources()


def test_switched_on_the_sync_job_includes_it(history_on: None) -> None:
    assets, synced = synced_by_the_sync_job()
    assert "home_assistant_history" in synced and "home_assistant_history" in assets
    assert "influxdb" in defs().get_repository_def().get_top_level_resources()


def test_a_sync_writes_every_measurement_with_its_tags_and_fields(
    history_on: None, fake_ha: FakeHomeAssistant, db_url: str, recorder: Recorder, victoria: str
) -> None:
    result = run_sync(fake_ha, db_url, recorder.url)
    assert result.success
    results = fake_ha.results
    series = export(victoria, HOME)
    by_metric: dict[str, list[dict]] = {}
    for s in series:
        by_metric.setdefault(s["metric"]["__name__"], []).append(s)
    devices, states = results["config/device_registry/list"], results["get_states"]
    assert len(by_metric["ha_device_entity_count"]) == len(devices)
    assert len(by_metric["ha_entity_available"]) == len(states)
    assert len(by_metric["ha_overview_devices"]) == 1 and by_metric["ha_overview_devices"][0]["values"] == [len(devices)]
    changes = len(devices) + len(results["config/entity_registry/list"]) + len(results["config/area_registry/list"]) + len(
        results["config/floor_registry/list"]) + len(results["config/label_registry/list"]) + len(results["config_entries/get"])
    assert len(by_metric["ha_registry_change_changed"]) == changes  # the first sync added every registry row

    # a device placed in an area on a floor: its tags and its real entity count
    placed = next(d for d in devices if d["area_id"] == "kitchen")
    device_series = next(s for s in by_metric["ha_device_entity_count"] if s["metric"]["device_id"] == placed["id"])
    floor = next(a["floor_id"] for a in results["config/area_registry/list"] if a["area_id"] == "kitchen")
    assert device_series["metric"]["area"] == "Kitchen"
    assert device_series["metric"]["floor"] == next(f["name"] for f in results["config/floor_registry/list"] if f["floor_id"] == floor)
    assert device_series["metric"]["integration"] in {e["domain"] for e in results["config_entries/get"]}
    entity_count = sum(1 for e in results["config/entity_registry/list"] if e["device_id"] == placed["id"])
    assert device_series["values"] == [entity_count]

    # a numeric state has its value; every entity point says available, disabled, hidden
    numeric = next(s for s in states if s["state"].replace(".", "", 1).isdigit())
    value = next(s for s in by_metric["ha_entity_value"] if s["metric"]["entity_id"] == numeric["entity_id"])
    assert value["values"] == [float(numeric["state"])]
    assert value["metric"]["domain"] == numeric["entity_id"].split(".")[0]
    assert {s["metric"]["entity_id"] for s in by_metric["ha_entity_hidden"]} == {s["entity_id"] for s in states}

    # all points of the sync share its timestamp
    with sa.create_engine(db_url).connect() as connection:
        finished = connection.execute(sa.text("SELECT finished_at FROM ha_sync_runs")).scalar_one()
    stamps = {t for s in series for t in s["timestamps"]}
    finished_ms = (datetime.fromisoformat(str(finished)).replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert stamps == {finished_ms}

    # strings (VictoriaMetrics keeps numbers only): in what was sent
    lines = recorder.lines()
    assert sum(line.startswith("ha_entity,") for line in lines) == len(states)
    state_line = next(line for line in lines if f"entity_id={numeric['entity_id']}," in line)
    assert f'state="{numeric["state"]}"' in state_line
    device_line = next(line for line in lines if line.startswith("ha_device,") and f"device_id={placed['id']}" in line)
    assert f'name="{placed["name_by_user"] or placed["name"]}"' in device_line.replace("\\ ", " ")
    assert INFLUX_TOKEN not in "\n".join(repr(e) for e in result.all_events)


def test_a_retried_write_adds_no_points(
    history_on: None, fake_ha: FakeHomeAssistant, db_url: str, recorder: Recorder, victoria: str
) -> None:
    assert run_sync(fake_ha, db_url, recorder.url).success
    first = export(victoria, HOME)
    # the history step again for the same sync, as a retry would
    again = dg.materialize(
        [ha_assets.home_assistant_mirror, history_assets.home_assistant_history],
        selection=[history_assets.home_assistant_history],
        resources={
            "home_assistant": one_home(fake_ha.url, TOKEN),
            "mirror": MirrorDatabase(url=db_url),
            "influxdb": InfluxDBResource(url=recorder.url, token=INFLUX_TOKEN, org="homeiq", bucket="home"),
        },
        partition_key=HOME,
    )
    assert again.success
    assert len(recorder.bodies) >= 2 and recorder.bodies[0] == recorder.bodies[-1]  # same points, same times
    assert export(victoria, HOME) == first


@pytest.mark.parametrize(
    ("fail_with", "message"),
    [
        ((401, "unauthorized access"), "rejected the token (check INFLUXDB_TOKEN): HTTP 401"),
        ((404, 'bucket "home" not found'), "has no bucket 'home'"),
    ],
)
def test_a_bad_token_or_a_missing_bucket_fails_clearly_without_retries_and_the_mirror_is_unaffected(
    history_on: None, fake_ha: FakeHomeAssistant, db_url: str, recorder: Recorder, fail_with: tuple[int, str], message: str
) -> None:
    recorder.fail_with = fail_with
    result = run_sync(fake_ha, db_url, recorder.url)
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert message in str(failure.event_specific_data.error)
    assert not any(e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY for e in result.all_events)
    assert INFLUX_TOKEN not in str(failure.event_specific_data.error)
    with sa.create_engine(db_url).connect() as connection:
        devices = connection.execute(sa.text("SELECT count(*) FROM ha_devices WHERE removed_at IS NULL")).scalar()
    assert devices == len(fake_ha.results["config/device_registry/list"])


def test_influxdb_down_is_a_clear_error_that_the_step_tries_again() -> None:
    from homeiq_pipeline.defs.influxdb.resources import InfluxDBUnavailable

    resource = InfluxDBResource(url=f"http://127.0.0.1:{free_port()}", token=INFLUX_TOKEN, org="o", bucket="b", timeout_seconds=2)
    started = time.monotonic()
    with pytest.raises(InfluxDBUnavailable, match=r"InfluxDB at http://127.0.0.1:\d+ is unreachable") as failure:
        resource.write(["ha_overview devices=1i 1764230000000"])
    assert time.monotonic() - started < 5 and INFLUX_TOKEN not in str(failure.value)
    # The step tries again itself (not Dagster's RetryPolicy, whose failure reads "Exceeded max_retries").
    assert history_assets.home_assistant_history.op.retry_policy is None


def test_a_run_with_influxdb_down_tries_again_then_fails_saying_why_first(
    fake_ha: FakeHomeAssistant, db_url: str
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    quick = {"ops": {"home_assistant_history": {"config": {"tries": 2, "first_pause_seconds": 0.1}}}}
    result = run_sync(fake_ha, db_url, down, run_config=quick)
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    error = failure.event_specific_data.error
    assert error.message.startswith(f"dagster._core.definitions.events.Failure: InfluxDB at {down} is unreachable: ")
    assert "(2 tries over " in error.message and error.cause is None  # no chain of stack traces under it
    assert not any(e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY for e in result.all_events)
    with sa.create_engine(db_url).connect() as connection:  # the mirror's own step was not held back
        devices = connection.execute(sa.text("SELECT count(*) FROM ha_devices WHERE removed_at IS NULL")).scalar()
    assert devices == len(fake_ha.results["config/device_registry/list"])


@pytest.mark.parametrize(
    ("tags", "fields"),
    [
        ({"entity_id": "light.a", "area": "Living Room", "unit": "°C"}, {"state": "on", "value": 21.0, "available": True}),
        ({"name": 'comma,equals=space \\back', "device_class": None, "floor": ""}, {"count": 3, "text": 'say "hi" \\ bye'}),
        ({"a": "trailing\\"}, {"ratio": 0.1 + 0.2, "nan": float("nan"), "big": 12345678901234, "off": False}),
    ],
)
def test_lines_are_what_influxdb_clients_point_writes(tags: dict, fields: dict) -> None:
    from influxdb_client import Point, WritePrecision

    from homeiq_pipeline.history import _point

    point = Point("ha_entity").time(1764230000123, WritePrecision.MS)
    for key, value in tags.items():
        if value not in (None, ""):
            point.tag(key, value)
    for key, value in fields.items():
        point.field(key, value)
    assert _point("ha_entity", 1764230000123, tags, fields) == point.to_line_protocol()


def test_entity_lines_built_by_column_equal_the_line_by_line_encoding() -> None:
    """The fast, column-wise ha_entity lines against `_point`, on a real HA's recorded states."""
    from homeiq_pipeline import analytics
    from homeiq_pipeline.demo.server import load_recording
    from homeiq_pipeline.history import ENTITY_TAGS, _point, entity_frame, entity_points, state_classes
    from homeiq_pipeline.homeassistant import LIST_COMMANDS, Snapshot
    from homeiq_pipeline.storage import open_database, sync_snapshot

    results = load_recording()["results"]
    results["get_states"][0]["attributes"]["device_class"] = 'odd, "class"=x\\'  # escaping exercised
    snapshot = Snapshot(ha_version="2025.4.4", location_name="x", config={},
                        **{name: results[command] for name, command in LIST_COMMANDS.items()})
    engine = open_database("sqlite://")
    sync_snapshot(engine, snapshot)
    with engine.connect() as connection:
        picture = analytics.load_mirror(connection, "home")
        classes = state_classes(connection, "home")
    fast = entity_points(picture, classes, "home", 1764230000123)
    frame = entity_frame(picture, classes, "home")
    slow = [
        _point("ha_entity", 1764230000123, {k: row[k] for k in ENTITY_TAGS},
               {k: row[k] for k in ("state", "value", "available", "disabled", "hidden")})
        for row in frame.astype(object).where(frame.notna(), None).to_dict("records")
    ]
    assert fast == slow and len(fast) == len(results["get_states"])
