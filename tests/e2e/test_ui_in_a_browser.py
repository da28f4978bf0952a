"""The Dagster UI, in a real Chromium: the registry assets are in the graph and the latest
materialization's row count is shown."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from ..helpers import Deployment, finished, wait_for
from .browser import ui_page

pytestmark = pytest.mark.e2e

REGISTRY_ASSETS = ["ha_devices", "ha_entities", "ha_areas", "ha_floors", "ha_labels", "ha_config_entries", "ha_states"]


@pytest.fixture
def page(browser: Browser, deployment: Deployment, tmp_path) -> Iterator[Page]:
    wait_for("the first sync", lambda: finished(deployment, "first contact"), timeout=120)
    with ui_page(browser, deployment.url, tmp_path / "last.png") as page:
        yield page


def test_the_asset_graph_shows_every_registry_asset(page: Page) -> None:
    page.set_viewport_size({"width": 1400, "height": 2600})  # the graph draws only the nodes in view
    page.goto("/asset-groups")
    graph_nodes = page.locator("svg foreignObject")  # the graph's nodes, not the sidebar's list
    graph_nodes.filter(has_text="home_assistant").first.dblclick()  # expand the group
    for asset in REGISTRY_ASSETS:
        graph_nodes.filter(has_text=asset).first.wait_for(state="attached")


def test_an_asset_page_shows_the_latest_row_count(page: Page, deployment: Deployment) -> None:
    page.goto("/assets/ha_devices")
    expected = len(deployment.ha.results["config/device_registry/list"])
    row_count = page.get_by_text("Row count", exact=True)
    row_count.wait_for()
    body = page.inner_text("body")
    assert re.search(rf"Row count\s+{expected}\b", body), body[:2000]
