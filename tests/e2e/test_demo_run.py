"""`homeiq-pipeline run --demo` (`make demo`) as a person starts it, a real Dagster webserver and
daemon: it starts without Dagster's supersession or instance warnings and without the watcher's
"webserver unreachable" ones, its watcher (on by default) brings the demo into the demo's own
mirror through Dagster, a second `run` on its instance is refused naming it, and `make run` in
the same checkout afterwards shows none of the demo's runs: the demo has a DAGSTER_HOME and a
database of its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from playwright.sync_api import Browser
import sqlalchemy as sa

from homeiq_pipeline.watch import DagsterRuns

from ..helpers import NEVER_DURING_TESTS, free_port, launched, stop_run, sync_runs, wait_for
from .browser import ui_page

pytestmark = pytest.mark.e2e

# What `dagster dev` and the watcher must not say on a normal start.
START_UP_NOISE = (
    "SupersessionWarning",
    "is superseded",
    "Found a dagster instance configuration",
    "No dagster instance configuration file",
    "could not request a sync now",  # the watcher asking a webserver that is not up yet
    "Traceback",
)


def cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "homeiq_pipeline.cli", *args], env=environment(data),
                          capture_output=True, text=True, timeout=120, check=False)


def environment(data: Path) -> dict[str, str]:
    """A checkout whose data folder is `data`, with nothing of the test run's own settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HA_", "HOMEIQ_", "DAGSTER_"))}
    return {**env, "HOMEIQ_DATA_DIR": str(data), "HA_REFRESH_CRON": NEVER_DURING_TESTS}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("demo-run")
    data, log = tmp / "data", tmp / "demo.log"
    url, ha_url = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "homeiq_pipeline.cli", "run", "--demo", "--port", url.rsplit(":", 1)[1],
               "--demo-ha-port", ha_url.rsplit(":", 1)[1]]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=environment(data), stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_for("the demo's Dagster webserver", DagsterRuns(url).answers, timeout=120)
        yield SimpleNamespace(url=url, ha_url=ha_url, data=data, log=log, process=process)
    finally:
        stop_run(process)


def test_the_watcher_brings_a_change_through_dagster_after_a_quiet_start(demo: SimpleNamespace) -> None:
    def runs(trigger: str) -> list[dict]:
        return [r for r in sync_runs(demo.url) if r["tags"].get("homeiq/trigger") == trigger and r["status"] == "SUCCESS"]

    wait_for("the demo's first sync", lambda: runs("reconnect") or runs("watch"), timeout=180, every=1)
    changed = cli(demo.data, "demo-change", "--ha-url", demo.ha_url, "rename-device", "Renamed by the test")
    assert changed.returncode == 0, changed
    [run] = wait_for("the watcher's sync of the change", lambda: runs("watch"), timeout=180, every=1)
    assert run["tags"]["dagster/partition"] == "demo" and "device_registry update" in run["tags"]["homeiq/reason"]
    output = demo.log.read_text(errors="replace")
    assert not [noise for noise in START_UP_NOISE if noise in output], output
    assert " - DEBUG - " not in output, output  # the runs print INFO and above (dagster.yaml's python_logs)
    assert "synced Home Assistant 2025.4.4 (DEMO" in output  # each sync's one INFO line
    engine = sa.create_engine(f"sqlite:///{demo.data / 'demo.db'}")
    try:
        with engine.connect() as connection:
            named = connection.execute(sa.text("SELECT count(*) FROM ha_devices WHERE name_by_user = :name"),
                                       {"name": "Renamed by the test"}).scalar_one()
    finally:
        engine.dispose()
    assert named == 1
    status = cli(demo.data, "status", "--demo")
    assert status.returncode == 0 and "instance 'demo'" in status.stdout and "success" in status.stdout, status
    assert (demo.data / "demo" / "dagster" / "dagster.yaml").exists()
    assert not (demo.data / "dagster").exists() and not (demo.data / "homeiq.db").exists()


def test_a_second_demo_is_refused_naming_the_first(demo: SimpleNamespace) -> None:
    second = cli(demo.data, "run", "--demo", "--port", str(free_port()), "--demo-ha-port", str(free_port()))
    assert second.returncode == 2
    home = demo.data.resolve() / "demo" / "dagster"
    assert second.stderr == (
        f"homeiq-pipeline: another `homeiq-pipeline run` is already running on DAGSTER_HOME={home} "
        f"(pid {demo.process.pid}, UI at {demo.url}): stop it first (Ctrl-C in its terminal, or `kill {demo.process.pid}`)\n"
    )


def test_make_run_in_the_same_checkout_shows_none_of_the_demos_runs(
    demo: SimpleNamespace, browser: Browser, tmp_path: Path
) -> None:
    assert any(run["tags"].get("dagster/partition") == "demo" for run in sync_runs(demo.url))
    status = cli(demo.data, "status")
    assert status.returncode == 0
    assert status.stdout.startswith("No mirror at sqlite:///") and not (demo.data / "homeiq.db").exists()
    # `make run` here: the real instance (data/dagster), its HA down for the test
    with launched(demo.data, f"http://127.0.0.1:{free_port()}", "a-token-for-nothing",
                  {"DAGSTER_HOME": str(demo.data / "dagster"), "HOMEIQ_DATA_DIR": str(demo.data),
                   "HOMEIQ_DB_URL": f"sqlite:///{demo.data / 'homeiq.db'}"}) as (url, _log):
        assert sync_runs(url) == []
        # What a person reads on the real UI's Runs page: no run at all, so none of the demo's.
        with ui_page(browser, url, tmp_path / "runs.png") as page:
            page.goto("/runs")
            page.get_by_text(re.compile("No runs (found|have been launched)")).first.wait_for()
            shown = page.inner_text("body")
            assert "demo" not in shown.lower(), shown[:3000]
        with ui_page(browser, demo.url, tmp_path / "demo-runs.png") as page:  # not vacuous: the demo's UI shows them
            page.goto("/runs")
            page.get_by_text("partition: demo").first.wait_for()
