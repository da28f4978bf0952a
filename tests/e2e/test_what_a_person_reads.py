"""What a person reads in the Dagster UI when Home Assistant is not all right, in a real Chromium
against a real webserver and daemon: the reconnect sensor's tick says what it saw (HA down: a skip
whose reason names the cause; a rejected token: failed ticks, red, with the reason as their error,
while the token is tried once), and a failed run's message starts with the cause. Its own
deployment: the tests stop Home Assistant and revoke the token."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from homeiq_pipeline.watch import DagsterRuns

from ..fake_ha import FakeHomeAssistant
from ..helpers import QUICK_TRIES, RECONNECT_SENSOR, TOKEN, Deployment, finished, free_port, launched, wait_for
from .browser import ui_page

pytestmark = pytest.mark.e2e

SENSOR_PAGE = "/locations/homeiq_pipeline/sensors/home_assistant_reconnect"

TICKS = f"""
query Ticks {{
  {RECONNECT_SENSOR} {{
    ... on Sensor {{ sensorState {{
      typeSpecificData {{ ... on SensorData {{ lastCursor }} }}
      ticks(limit: 10) {{ timestamp status skipReason error {{ message cause {{ message }} }} }}
    }} }}
  }}
}}
"""

RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) { ... on Run { status } }
  logsForRun(runId: $runId) {
    ... on EventConnection { events { __typename ... on ExecutionStepFailureEvent { error { message } } } }
  }
}
"""

@pytest.fixture(scope="module")
def troubled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A deployment of its own, whose Home Assistant the tests stop and whose token they revoke."""
    ha = FakeHomeAssistant(token=TOKEN, port=free_port()).start()
    try:
        with launched(tmp_path_factory.mktemp("troubled"), ha.url, TOKEN) as (url, log):
            deployment = Deployment(url, ha, log)
            wait_for("the first sync", lambda: finished(deployment, "first contact"), timeout=180)
            yield deployment
    finally:
        ha.stop()


@pytest.fixture
def page(browser: Browser, troubled: Deployment, tmp_path: Path) -> Iterator[Page]:
    with ui_page(browser, troubled.url, tmp_path / "last.png") as page:
        yield page


def sensor_state(deployment: Deployment) -> dict[str, Any]:
    return deployment.graphql(TICKS)["sensorOrError"]["sensorState"]


def ticks(deployment: Deployment, status: str, since: float = 0.0) -> list[dict[str, Any]]:
    """The sensor's last ticks of `status`, newest first, that started after `since`."""
    return [t for t in sensor_state(deployment)["ticks"] if t["timestamp"] > since and t["status"] == status]


def tick_reason_on_the_sensor_page(page: Page, reason: str) -> str:
    """The skip reason a person reads: the tooltip of a tick's "0 runs requested"."""
    page.goto(SENSOR_PAGE)
    page.get_by_text("0 runs requested").first.hover()
    tooltip = page.get_by_role("tooltip").filter(has_text=reason)
    tooltip.wait_for()
    return tooltip.inner_text()


def test_home_assistant_down_is_the_ticks_reason_and_a_failed_runs_first_line(troubled: Deployment, page: Page) -> None:
    port = troubled.ha.port
    websocket = f"ws://127.0.0.1:{port}/api/websocket"
    stopped_at = time.time()
    troubled.ha.stop()
    # Launched by hand while HA is down, with short pauses (the defaults, 10, 20, 40 s, add a minute).
    run_id = DagsterRuns(troubled.url).launch_sync("home", {}, QUICK_TRIES)

    down = f"home: unreachable: cannot reach Home Assistant at {websocket} (connecting): [Errno 111] Connection refused"
    wait_for("a tick that saw HA down", lambda: [t for t in ticks(troubled, "SKIPPED", stopped_at)
                                                 if t["skipReason"] == down], timeout=60)
    assert down in tick_reason_on_the_sensor_page(page, down)
    assert not ticks(troubled, "FAILURE", stopped_at)  # HA may come back by itself: no person is needed

    # The run tries 3 times (pauses of 0.5 and 1 s), then fails saying why, first.
    wait_for("the run to fail", lambda: troubled.graphql(RUN, runId=run_id)["runOrError"]["status"] == "FAILURE",
             timeout=240)
    events = troubled.graphql(RUN, runId=run_id)["logsForRun"]["events"]
    (failure,) = [e["error"]["message"] for e in events if e["__typename"] == "ExecutionStepFailureEvent"]
    first_line = f"cannot reach Home Assistant at {websocket} (connecting): [Errno 111] Connection refused (3 tries over "
    assert failure.startswith(f"dagster._core.definitions.events.Failure: {first_line}"), failure
    page.goto(f"/runs/{run_id}")
    page.get_by_text(first_line).first.wait_for()
    shown = page.inner_text("body")
    assert "max_retries" not in shown and "The above exception was caused by" not in shown, shown[:3000]

    troubled.ha = FakeHomeAssistant(token=TOKEN, port=port).start()
    wait_for("the reconnect sync", lambda: finished(troubled, "reconnected"), timeout=120)


def test_a_rejected_token_fails_the_ticks_until_it_is_fixed_and_the_cursor_reset(troubled: Deployment, page: Page) -> None:
    revoked_at = time.time()
    troubled.ha.token = "the-token-home-assistant-now-wants"  # ours was revoked in HA
    rejected = "home: token rejected: fix HA_TOKEN, then reset this sensor's cursor (not trying again before "
    # (Any tick: one that started just before the token was revoked may have been the one to find it.)
    (skipped,) = wait_for("the tick that found the token rejected", lambda: [
        t for t in ticks(troubled, "SKIPPED") if (t["skipReason"] or "").startswith(rejected)], timeout=60)
    reason = skipped["skipReason"]
    remembered = sensor_state(troubled)["typeSpecificData"]["lastCursor"]
    assert '\\"auth_failures\\": 1' in remembered  # when to try the token again

    # The ticks after it fail, with the same reason as their error; Dagster keeps the cursor as it
    # was before each failed tick, so the token is not tried again.
    failed = wait_for("two failed ticks", lambda: len(ticks(troubled, "FAILURE")) >= 2 and
                      ticks(troubled, "FAILURE"), timeout=60)
    assert all(t["error"]["cause"]["message"].strip().endswith(f"HomeNeedsAPerson: {reason}") for t in failed), failed
    assert sensor_state(troubled)["typeSpecificData"]["lastCursor"] == remembered
    assert troubled.ha.auth_failures == 1

    page.goto(SENSOR_PAGE)
    latest = page.get_by_role("row").filter(has_text="Latest tick")  # the page's head: Failure, View
    latest.get_by_text("Failure", exact=True).wait_for()
    latest.get_by_role("button", name="View", exact=True).click()  # the failed tick's error
    error = page.get_by_role("dialog").filter(has_text=reason)
    error.wait_for()
    error.get_by_role("button", name="Close").click()

    # Fixed (HA takes our token again), then the cursor reset on the sensor's page, as the reason
    # says: the token is tried at once, and a sync follows.
    troubled.ha.token = TOKEN
    page.get_by_role("row").filter(has_text="Cursor").get_by_role("button", name="Edit").click()
    editing = page.get_by_role("dialog").filter(has_text="Edit home_assistant_reconnect cursor")
    editing.get_by_role("textbox").fill("")
    editing.get_by_role("button", name="Set cursor value").click()
    page.get_by_text("Cursor value updated").wait_for()
    synced = wait_for("the sync after the reset", lambda: [
        r for r in troubled.sync_runs() if r["creationTime"] > revoked_at and r["status"] == "SUCCESS"], timeout=120)
    assert [r["tags"]["homeiq/reason"] for r in synced] == ["first contact"]
    assert troubled.ha.auth_failures == 1
