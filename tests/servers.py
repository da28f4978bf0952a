"""The one rule for tests that need a real server (Home Assistant, PostgreSQL, VictoriaMetrics,
Chromium, podman): on a user's machine a missing one skips with a loud reason; where
HOMEIQ_REQUIRE_REAL_SERVERS=1 (CI sets it) it fails instead, so no tier can silently not run.
Importing it puts scripts/ (the harness the tests, scripts and benchmarks share) on sys.path."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

REQUIRED_BY = "HOMEIQ_REQUIRE_REAL_SERVERS"


def required() -> bool:
    return os.environ.get(REQUIRED_BY, "") not in ("", "0")


def missing(reason: str) -> NoReturn:
    """A server this test needs is not there: skip, or fail where real servers are required."""
    if required():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)
