"""A tiny custom integration that holds a real Home Assistant in each start-up phase for a while,
so a test can talk to HA while it is not RUNNING without racing it.

Checked in the source of HA 2025.4.4 and 2025.1.4 (site-packages/homeassistant; same in both):
- runner.py `setup_and_run_hass`: `bootstrap.async_setup_hass` (every integration's setup) runs
  to the end before `hass.async_run()` -> `core.async_start()`; until then `get_config` reports
  NOT_RUNNING. bootstrap.py `_async_set_up_integrations` awaits stage 2 (our domain) with
  STAGE_2_TIMEOUT = 300 s, so an `async_setup` that sleeps holds HA in NOT_RUNNING. The
  websocket already answers then: `frontend` (stage 0) starts the HTTP server.
- core.py `async_start`: sets STARTING, fires `homeassistant_start`, then awaits the tasks in
  `hass._tasks` (a listener coroutine runs as one) for up to TIMEOUT_EVENT_START = 15 s before
  RUNNING. A listener that sleeps less than 15 s holds HA in STARTING for exactly that long.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

DOMAIN = "homeiq_slow_start"
HA_START_EVENT_TIMEOUT = 15  # core.TIMEOUT_EVENT_START: HA stops waiting for start tasks after it

MANIFEST = {
    "domain": DOMAIN,
    "name": "HomeIQ slow start (tests only)",
    "version": "1.0.0",  # custom integrations without a version are refused
    "codeowners": [],
    "dependencies": [],
    "requirements": [],
    "documentation": "https://example.invalid/homeiq",
    "iot_class": "local_push",
}

CODE = '''\
"""Holds Home Assistant in NOT_RUNNING, then in STARTING (homeiq-pipeline's real-HA tests)."""
import asyncio

from homeassistant.const import EVENT_HOMEASSISTANT_START

DOMAIN = "homeiq_slow_start"


async def async_setup(hass, config):
    options = config.get(DOMAIN) or {}
    await asyncio.sleep(options.get("not_running_seconds", 0))

    async def hold_starting(_event):
        await asyncio.sleep(options.get("starting_seconds", 0))

    hass.bus.async_listen_once(EVENT_HOMEASSISTANT_START, hold_starting)
    return True
'''


def install(config_dir: Path, *, not_running_seconds: float, starting_seconds: float) -> str:
    """Write the integration into `config_dir/custom_components`; return the YAML that enables it."""
    if starting_seconds >= HA_START_EVENT_TIMEOUT:
        raise ValueError(f"HA waits at most {HA_START_EVENT_TIMEOUT} s in STARTING, not {starting_seconds}")
    package = Path(config_dir) / "custom_components" / DOMAIN
    package.mkdir(parents=True, exist_ok=True)
    (package / "manifest.json").write_text(json.dumps(MANIFEST, indent=2) + "\n")
    (package / "__init__.py").write_text(CODE)
    return f"{DOMAIN}:\n  not_running_seconds: {not_running_seconds}\n  starting_seconds: {starting_seconds}\n"


def uninstall(config_dir: Path) -> None:
    shutil.rmtree(Path(config_dir) / "custom_components" / DOMAIN, ignore_errors=True)
