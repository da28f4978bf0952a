"""A real Dagster deployment for end-to-end tests: `homeiq-pipeline run` (webserver + daemon) against
a Home Assistant protocol server that the tests stop and restart, read through Dagster's GraphQL API."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from homeiq_pipeline.demo.server import FakeHomeAssistant

from ..conftest import TOKEN
from ..servers import free_port, missing

SENSOR_INTERVAL = 5  # seconds; the daemon ticks sensors at most this often anyway
NEVER_DURING_TESTS = "0 0 1 1 *"  # a refresh schedule for deployments whose tests count runs


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


def graphql(url: str, query: str, **variables: Any) -> dict[str, Any]:
    """One query to the Dagster webserver at `url`; GraphQL errors fail the test."""
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
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


SENSOR_TICKS_QUERY = """
query Ticks {
  sensorOrError(sensorSelector: {repositoryName: "__repository__", repositoryLocationName: "homeiq_pipeline",
                                 sensorName: "home_assistant_reconnect"}) {
    ... on Sensor { sensorState { ticks(limit: 20) { timestamp status skipReason } } }
  }
}
"""


def reconnect_runs(deployment: Deployment) -> list[dict[str, Any]]:
    return [run for run in deployment.sync_runs() if run["tags"].get("homeiq/trigger") == "reconnect"]


def finished(deployment: Deployment, reason: str) -> dict[str, Any] | None:
    runs = [run for run in reconnect_runs(deployment) if run["tags"].get("homeiq/reason") == reason]
    assert all(run["status"] in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "SUCCESS") for run in runs), runs
    return next((run for run in reversed(runs) if run["status"] == "SUCCESS"), None)


def skipped_since(deployment: Deployment, since: float, text: str) -> int:
    ticks = deployment.graphql(SENSOR_TICKS_QUERY)["sensorOrError"]["sensorState"]["ticks"]
    return sum(1 for tick in ticks if tick["timestamp"] > since and text in (tick["skipReason"] or ""))


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


@contextmanager
def launched(tmp: Path, ha_url: str | None = None, token: str | None = None,
             extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, Path]]:
    """`homeiq-pipeline run` (webserver + daemon) syncing the HA at `ha_url`: (UI URL, its log).
    `extra_env` overrides the defaults (e.g. HOMEIQ_DB_URL; a dagster.yaml placed in
    DAGSTER_HOME beforehand is kept). With HOMEIQ_HOMES_FILE in it, HA_URL and HA_TOKEN are not
    set at all, as the README's recipe for many homes has it."""
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
            [sys.executable, "-m", "homeiq_pipeline.cli", "run", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("the Dagster webserver", lambda: _answers(url), timeout=90)
        yield url, log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)  # it gives `dagster dev` 20 s, then kills it
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="package")  # not running on (and loading the machine) through the later tiers
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A deployment syncing a protocol server on a fixed port, which tests stop and restart."""
    ha = FakeHomeAssistant(token=TOKEN, port=free_port()).start()
    try:
        with launched(tmp_path_factory.mktemp("deployment"), ha.url, TOKEN) as (url, log):
            yield Deployment(url, ha, log)
    finally:
        ha.stop()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    missing("Chromium is not installed (Debian: apt-get install chromium); the browser test needs it")
