"""The Dagster UI in a real Chromium (Debian's, driven by Playwright; no browser is downloaded), read
as a person reads it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from ..helpers import chromium_path

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def ui_page(browser: Browser, url: str, screenshot: Path) -> Iterator[Page]:
    """A page of the Dagster UI at `url`; its last state is saved to `screenshot`."""
    page = browser.new_page(viewport={"width": 1400, "height": 900}, base_url=url)
    page.set_default_timeout(90_000)  # Dagster's bundle is large; a loaded 2-core machine parses it slowly
    # A first visit opens a "Join the Dagster community" dialog over the page, whenever it likes.
    page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())
    try:
        yield page
    finally:
        page.screenshot(path=str(screenshot))
        page.close()
