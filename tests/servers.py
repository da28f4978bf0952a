"""The one rule for tests that need a real server (Home Assistant, PostgreSQL, VictoriaMetrics,
Chromium, podman): on a user's machine a missing one skips with a loud reason; where
HOMEIQ_REQUIRE_REAL_SERVERS=1 (CI sets it) it fails instead, so no tier can silently not run.
And the one way tests choose a port for a server they start."""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path
from typing import NoReturn

import pytest

REQUIRED_BY = "HOMEIQ_REQUIRE_REAL_SERVERS"


def required() -> bool:
    return os.environ.get(REQUIRED_BY, "") not in ("", "0")


def free_port() -> int:
    """A port on 127.0.0.1 that is free now and that the kernel never hands out by itself: a
    server binds it seconds later (or binds it again after a restart), and meanwhile outgoing
    connections take their ports from the ephemeral range, which this avoids."""
    low, high = _ephemeral_range()
    candidates = [port for port in range(20_000, 65_536) if not low <= port <= high]
    for port in random.sample(candidates, 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken: try another
            return port
    raise RuntimeError("no free port on 127.0.0.1 in 200 tries")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32_768, 60_999  # Linux's default


def missing(reason: str) -> NoReturn:
    """A server this test needs is not there: skip, or fail where real servers are required."""
    if required():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)
