"""What the tests (and the benchmarks) share: waiting, the mirror, and a real Dagster deployment.

A deployment is `homeiq-pipeline run` (webserver + daemon) started by `launched`, read through
Dagster's GraphQL API. When a test fails while one runs, `dagster_diagnostics` shows why: the tail
of its `dagster dev` log (the daemon's output), the reconnect sensor's last ticks and the event
logs of the last runs (printed by `launched` for a failure inside it, added to the report by
tests/conftest.py for a failure while a fixture holds it).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from homeiq_pipeline import homeassistant as ha
from homeiq_pipeline import storage
from homeiq_pipeline.watch import DagsterRuns, Watcher

from .fake_ha import FakeHomeAssistant
from .servers import SCRIPTS, missing  # noqa: F401  (SCRIPTS: importing it puts scripts/ on sys.path)
from real_ha import free_port  # noqa: E402  (scripts/real_ha.py: the one way to choose a port)

TOKEN = "test-token-0123456789abcdef"
HOME = "home"  # the one partition of a single-home setup
SENSOR_INTERVAL = 5  # seconds; the daemon ticks sensors at most this often anyway
NEVER_DURING_TESTS = "0 0 1 1 *"  # a refresh schedule for deployments whose tests count runs
SELECTOR = {"repositoryName": "__repository__", "repositoryLocationName": "homeiq_pipeline"}
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")
# Run config for a sync launched while its home is down: 3 tries, 0.5 and 1 s apart (the defaults,
# 10, 20 and 40 s apart, would add a minute to each such test).
QUICK_TRIES = {"ops": {"home_assistant_mirror": {"config": {"tries": 3, "first_pause_seconds": 0.5}}}}


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30, every: float = 0.5) -> Any:
    """Poll until `check()` returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def at_once(function: Callable[[Any], object], arguments: Sequence[Any], timeout: float = 60) -> list[object]:
    """`function` on each argument, each in its own thread, all started together: what each
    returned, or the exception it raised (for the test to assert on)."""
    with ThreadPoolExecutor(len(arguments)) as pool:
        futures = [pool.submit(function, argument) for argument in arguments]
        return [future.exception(timeout) or future.result() for future in futures]


# -- the mirror ------------------------------------------------------------------------------------


def fetch(server: FakeHomeAssistant, **client_options: object) -> ha.Snapshot:
    with ha.HomeAssistantClient(server.url, TOKEN, **client_options) as client:  # type: ignore[arg-type]
        return ha.fetch_snapshot(client)


def sync(server: FakeHomeAssistant, engine: sa.Engine, **options: object) -> storage.SyncResult:
    return storage.sync_snapshot(engine, fetch(server), **options)  # type: ignore[arg-type]


def database_fingerprint(db_url: str) -> str:
    """A hash of everything in the database, on any engine: every table's name, columns and
    indexes, and all its rows (in a canonical order), the migration version included. Equal
    fingerprints mean no row, value, table or index was added, changed or removed."""
    engine = sa.create_engine(db_url)
    digest = hashlib.sha256()
    try:
        inspector = sa.inspect(engine)
        all_columns, all_indexes = inspector.get_multi_columns(), inspector.get_multi_indexes()  # one query each
        with engine.connect() as connection:
            for (_, name), found in sorted(all_columns.items()):
                columns = [column["name"] for column in found]
                indexes = sorted(index["name"] or "" for index in all_indexes.get((None, name), []))
                digest.update(repr((name, columns, indexes)).encode())
                table = sa.table(name, *(sa.column(column) for column in columns))
                # Sorted here, not by SQL: PostgreSQL's json type has no ordering.
                rows = sorted(repr(tuple(row)) for row in connection.execute(sa.select(table)))
                digest.update(repr((len(rows), rows)).encode())
    finally:
        engine.dispose()
    return digest.hexdigest()


# -- a Dagster deployment, read through its GraphQL API --------------------------------------------


def graphql(url: str, query: str, *, timeout: float = 30, **variables: Any) -> dict[str, Any]:
    """One query to the Dagster webserver at `url`; GraphQL errors fail the test."""
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body["errors"]
    return body["data"]


def sync_runs(url: str) -> list[dict[str, Any]]:
    """Every run of the sync job, oldest first, its tags as a dict."""
    runs = graphql(url, RUNS_QUERY, filter={"pipelineName": "sync_home_assistant"})["runsOrError"]["results"]
    for run in runs:
        run["tags"] = {tag["key"]: tag["value"] for tag in run["tags"]}
    return sorted(runs, key=lambda run: run["creationTime"])


@dataclass
class Deployment:
    url: str
    ha: Any  # the Home Assistant it syncs: a FakeHomeAssistant, or a real one
    log: Path

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        return graphql(self.url, query, **variables)

    def sync_runs(self) -> list[dict[str, Any]]:
        return sync_runs(self.url)

    def latest_materialization(self, asset: str) -> dict[str, Any]:
        data = self.graphql(ASSET_QUERY, key={"path": [asset]})
        (latest,) = data["assetOrError"]["assetMaterializations"]
        values = ("intValue", "text", "floatValue", "mdStr")
        latest["metadata"] = {e["label"]: next((e[v] for v in values if v in e), None) for e in latest["metadataEntries"]}
        return latest


def reconnect_runs(deployment: Deployment) -> list[dict[str, Any]]:
    return [run for run in deployment.sync_runs() if run["tags"].get("homeiq/trigger") == "reconnect"]


def finished(deployment: Deployment, reason: str) -> dict[str, Any] | None:
    runs = [run for run in reconnect_runs(deployment) if run["tags"].get("homeiq/reason") == reason]
    assert all(run["status"] in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "SUCCESS") for run in runs), runs
    return next((run for run in reversed(runs) if run["status"] == "SUCCESS"), None)


def skipped_since(deployment: Deployment, since: float, text: str) -> int:
    ticks = deployment.graphql(SENSOR_TICKS_QUERY)["sensorOrError"]["sensorState"]["ticks"]
    return sum(1 for tick in ticks if tick["timestamp"] > since and text in (tick["skipReason"] or ""))


RECONNECT_SENSOR = """sensorOrError(sensorSelector: {repositoryName: "__repository__",
    repositoryLocationName: "homeiq_pipeline", sensorName: "home_assistant_reconnect"})"""

SENSOR_TICKS_QUERY = f"""
query Ticks {{
  {RECONNECT_SENSOR} {{
    ... on Sensor {{ sensorState {{ ticks(limit: 20) {{ timestamp status skipReason }} }} }}
  }}
}}
"""

RUNS_QUERY = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    ... on Runs { results { runId status creationTime startTime endTime tags { key value } } }
  }
}
"""

ASSET_QUERY = """
query Asset($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) {
    ... on Asset {
      assetMaterializations(limit: 1) {
        runId
        metadataEntries {
          label
          ... on IntMetadataEntry { intValue }
          ... on TextMetadataEntry { text }
          ... on FloatMetadataEntry { floatValue }
          ... on MarkdownMetadataEntry { mdStr }
        }
      }
    }
  }
}
"""

RUNNING: dict[str, Path] = {}  # the deployments `launched` holds up right now: UI URL -> its log


@contextmanager
def launched(tmp: Path, ha_url: str | None = None, token: str | None = None,
             extra_env: dict[str, str] | None = None, *, watch: bool = False,
             check: bool = True) -> Iterator[tuple[str, Path]]:
    """`homeiq-pipeline run` (webserver + daemon) syncing the HA at `ha_url`: (UI URL, its log).
    `extra_env` overrides the defaults (e.g. HOMEIQ_DB_URL; a dagster.yaml placed in
    DAGSTER_HOME beforehand is kept). With HOMEIQ_HOMES_FILE in it, HA_URL and HA_TOKEN are not
    set at all, as the README's recipe for many homes has it. Without the live-mode watcher
    unless `watch` (tests that count the sensor's runs must see no others), and with `run`'s look
    at each home unless not `check` (for homes meant to fail in the deployment: a rejected token,
    an untrusted certificate)."""
    port = free_port()
    inherited = dict(os.environ)
    if "HOMEIQ_HOMES_FILE" in (extra_env or {}):
        assert ha_url is None and token is None, "the homes file names each home's URL and token variable"
        inherited.pop("HA_URL", None)
        inherited.pop("HA_TOKEN", None)
    else:
        assert ha_url is not None and token is not None
        inherited.pop("HOMEIQ_HOMES_FILE", None)
        inherited.update(HA_URL=ha_url, HA_TOKEN=token)
    env = {
        **inherited,
        "HOMEIQ_DB_URL": f"sqlite:///{tmp / 'mirror.db'}",
        "DAGSTER_HOME": str(tmp / "dagster"),
        "HA_SENSOR_INTERVAL_SECONDS": str(SENSOR_INTERVAL),
        # The hourly refresh would add a run whenever a test happens to span minute 0; tests that
        # are about the schedule set their own.
        "HA_REFRESH_CRON": NEVER_DURING_TESTS,
        **(extra_env or {}),
    }
    log = tmp / "dagster.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "homeiq_pipeline.cli", "run", "--port", str(port),
             "--watch" if watch else "--no-watch", "--check" if check else "--no-check"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    RUNNING[url] = log
    try:
        wait_for("the Dagster webserver", DagsterRuns(url).answers, timeout=90)
        yield url, log
    except (Exception, pytest.fail.Exception):
        print(dagster_diagnostics(url, log), file=sys.stderr)  # now, while Dagster still answers
        raise
    finally:
        del RUNNING[url]
        stop_run(process)


def stop_run(process: subprocess.Popen[Any]) -> None:
    """Stop a `homeiq-pipeline run` started in a session of its own: SIGTERM (it gives `dagster
    dev` 20 s, then kills it), and SIGKILL to its whole group if it is still there a minute later."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


class _ServerInfo(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # http.server's name for it
        self.send_response(200 if self.path == "/server_info" else 404)
        self.end_headers()

    def log_message(self, *_: object) -> None:  # quiet
        pass


@contextmanager
def answering_server_info(port: int) -> Iterator[None]:
    """A stand-in for the Dagster webserver on 127.0.0.1:`port`, as far as `/server_info` goes."""
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), _ServerInfo) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield
        finally:
            server.shutdown()
            thread.join(timeout=10)


# -- what went on in a deployment, for a failing test -------------------------------------------

LOG_LINES = 80  # of the `dagster dev` log
TICKS, RUNS = 10, 5  # the sensor's last ticks, the last runs
RUN_EVENTS, LAST_EVENTS = 40, 5  # of each run: its last events at INFO and above, and its very last events

DIAGNOSTICS_QUERY = f"""
query Diagnostics {{
  {RECONNECT_SENSOR} {{
    ... on Sensor {{ sensorState {{ status ticks(limit: {TICKS}) {{
      timestamp status skipReason runIds error {{ message }} logEvents {{ events {{ level message }} }}
    }} }} }}
    ... on Error {{ message }}
  }}
  runsOrError(limit: {RUNS}) {{
    ... on Runs {{ results {{ runId pipelineName status tags {{ key value }} }} }}
    ... on Error {{ message }}
  }}
}}
"""

RUN_EVENTS_QUERY = """
query RunEvents($runId: ID!) {
  logsForRun(runId: $runId) {
    ... on EventConnection { events {
      ... on MessageEvent { timestamp level eventType stepKey message }
      ... on ErrorEvent { error { message } }
    } }
    ... on Error { message }
  }
}
"""


def dagster_diagnostics(url: str, log: Path) -> str:
    """The tail of the deployment's `dagster dev` log (webserver and daemon), the reconnect
    sensor's last ticks (status, skip reason, error, its log) and the event logs of the last runs."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else ["(no log)"]
    report = [f"=== the last {LOG_LINES} lines of {log}", *lines[-LOG_LINES:]]
    try:
        data = graphql(url, DIAGNOSTICS_QUERY, timeout=10)
        sensor, runs = data["sensorOrError"], data["runsOrError"]
        report.append(f"=== the reconnect sensor's last {TICKS} ticks, newest first")
        if "message" in sensor:
            report.append(sensor["message"])
        else:
            report += [_tick(tick) for tick in sensor["sensorState"]["ticks"]]
        report.append(f"=== the last {RUNS} runs, newest first, with their events")
        if "message" in runs:
            report.append(runs["message"])
        else:
            for run in runs["results"]:
                report += _run(url, run)
    except (OSError, AssertionError, KeyError, TypeError) as exc:  # not answering, or answering oddly
        report.append(f"=== Dagster's GraphQL API at {url} did not answer: {exc!r}")
    return "\n".join(report)


def _clock(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds).strftime("%H:%M:%S.%f")[:-3]


def _tick(tick: dict[str, Any]) -> str:
    lines = [f"{_clock(tick['timestamp'])} {tick['status']} runs={tick['runIds']} skip={tick['skipReason']!r}"]
    if tick["error"]:
        lines.append(f"    error: {tick['error']['message'].strip()}")
    lines += [f"    {event['level']} {event['message']}" for event in tick["logEvents"]["events"]]
    return "\n".join(lines)


def _run(url: str, run: dict[str, Any]) -> list[str]:
    """A run's status and tags, and the messages of its events: the INFO and above (what went wrong
    is there), then its last DEBUG ones."""
    tags = {tag["key"]: tag["value"] for tag in run["tags"] if tag["key"].startswith("homeiq/")}
    answer = graphql(url, RUN_EVENTS_QUERY, timeout=10, runId=run["runId"])["logsForRun"]
    if "message" in answer:
        return [f"--- run {run['runId']}: {answer['message']}"]
    events = [event for event in answer["events"] if "message" in event]
    important = [n for n, event in enumerate(events) if event["level"] != "DEBUG"][-RUN_EVENTS:]
    last = range(max(0, len(events) - LAST_EVENTS), len(events))
    lines = [f"--- run {run['runId']} of {run['pipelineName']}: {run['status']} {tags}"]
    for event in (events[n] for n in sorted({*important, *last})):
        lines.append(f"{_clock(int(event['timestamp']) / 1000)} {event['level']} {event['eventType']} "
                     f"{event['stepKey'] or '-'}: {event['message']}")
        if event.get("error"):
            lines.append(f"    error: {event['error']['message'].strip()}")
    return lines


# -- live mode on a deployment ------------------------------------------------------------------

INSTIGATORS_QUERY = """
query Instigators($sensor: SensorSelector!, $schedule: ScheduleSelector!) {
  sensorOrError(sensorSelector: $sensor) { ... on Sensor { id sensorState { status } } }
  scheduleOrError(scheduleSelector: $schedule) { ... on Schedule { id scheduleState { status } } }
}
"""
STOP_SENSOR = """
mutation Stop($id: String!) { stopSensor(id: $id) { __typename ... on PythonError { message } } }
"""
STOP_SCHEDULE = """
mutation Stop($id: String!) { stopRunningSchedule(id: $id) { __typename ... on PythonError { message } } }
"""


def switch_off_sensor_and_schedule(url: str) -> None:
    """Switch both off once the sensor's first-contact sync exists, then let every run finish.
    (Switched off earlier, a tick already under way could still add a run at any moment; after
    it, the sensor has nothing to request while HA stays up and unchanged.)"""
    wait_for("the sensor's first-contact sync",
             lambda: any(r["tags"].get("homeiq/trigger") == "reconnect" for r in sync_runs(url)), timeout=180)
    sensor = {**SELECTOR, "sensorName": "home_assistant_reconnect"}
    schedule = {**SELECTOR, "scheduleName": "home_assistant_refresh"}
    found = graphql(url, INSTIGATORS_QUERY, sensor=sensor, schedule=schedule)
    assert graphql(url, STOP_SENSOR, id=found["sensorOrError"]["id"])["stopSensor"]["__typename"] != "PythonError"
    stopped = graphql(url, STOP_SCHEDULE, id=found["scheduleOrError"]["id"])["stopRunningSchedule"]
    assert stopped["__typename"] != "PythonError", stopped
    found = graphql(url, INSTIGATORS_QUERY, sensor=sensor, schedule=schedule)
    assert found["sensorOrError"]["sensorState"]["status"] == "STOPPED"
    assert found["scheduleOrError"]["scheduleState"]["status"] == "STOPPED"
    wait_for("runs from before the switch-off to finish",
             lambda: all(r["status"] in FINISHED for r in sync_runs(url)), timeout=180)


@dataclass
class LiveDeployment:
    """A deployment whose sensor and schedule are off, and the watcher (in a thread) that asks it for syncs."""

    url: str
    ha: Any  # the Home Assistant it watches: a FakeHomeAssistant, or a real one
    engine: sa.Engine
    watcher: Watcher
    since: float  # creation time (epoch s) after which every run must come from the watcher

    def runs(self) -> list[dict[str, Any]]:
        return [run for run in sync_runs(self.url) if run["creationTime"] > self.since]

    def settled(self) -> bool:
        """The watcher owes no sync and every run has finished (and each must succeed)."""
        if self.watcher.owes:
            return False
        runs = self.runs()
        assert all(run["status"] not in ("FAILURE", "CANCELED") for run in runs), runs
        return all(run["status"] == "SUCCESS" for run in runs)

    def finished_runs(self, what: str, at_least: int = 0) -> list[dict[str, Any]]:
        """The runs, once there are `at_least` of them and all have finished."""
        wait_for(what, lambda: self.settled() and len(self.runs()) >= at_least, timeout=180)
        return self.runs()


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    missing("Chromium is not installed (Debian: apt-get install chromium); the browser test needs it")
