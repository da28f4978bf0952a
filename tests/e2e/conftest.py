"""A real Dagster deployment for end-to-end tests: `homeiq-pipeline run` (webserver + daemon) against
a Home Assistant protocol server that the tests stop and restart, read through Dagster's GraphQL API
(tests/helpers.py); and a real Chromium to read its UI (browser.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from ..fake_ha import FakeHomeAssistant
from ..helpers import TOKEN, Deployment, free_port, launched
from .browser import chromium


@pytest.fixture(scope="package")  # not running on (and loading the machine) through the later tiers
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A deployment syncing a protocol server on a fixed port, which tests stop and restart."""
    ha = FakeHomeAssistant(token=TOKEN, port=free_port()).start()
    try:
        with launched(tmp_path_factory.mktemp("deployment"), ha.url, TOKEN) as (url, log):
            yield Deployment(url, ha, log)
    finally:
        ha.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser
