"""The Dagster UI, in a real Chromium: the registry assets are in the graph and the latest
materialization's row count is shown."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from ..helpers import Deployment, chromium_path, finished, wait_for

pytestmark = pytest.mark.e2e

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
REGISTRY_ASSETS = ["ha_devices", "ha_entities", "ha_areas", "ha_floors", "ha_labels", "ha_config_entries", "ha_states"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, deployment: Deployment, tmp_path) -> Iterator[Page]:
    wait_for("the first sync", lambda: finished(deployment, "first contact"), timeout=120)
    page = browser.new_page(viewport={"width": 1400, "height": 900}, base_url=deployment.url)
    page.set_default_timeout(90_000)  # Dagster's bundle is large; a loaded 2-core machine parses it slowly
    # A first visit opens a "Join the Dagster community" dialog over the page, whenever it likes.
    page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())
    yield page
    page.screenshot(path=str(tmp_path / "last.png"))
    page.close()


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
