"""The one rule for tests that need a real server (Home Assistant, PostgreSQL, VictoriaMetrics,
Chromium, podman): on a user's machine a missing one skips with a loud reason; where
HOMEIQ_REQUIRE_REAL_SERVERS=1 (CI sets it) it fails instead, so no tier can silently not run."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRED_BY = "HOMEIQ_REQUIRE_REAL_SERVERS"


def required() -> bool:
    return os.environ.get(REQUIRED_BY, "") not in ("", "0")


def missing(reason: str) -> NoReturn:
    """A server this test needs is not there: skip, or fail where real servers are required."""
    if required():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)
