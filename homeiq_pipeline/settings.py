"""Settings read from the environment, shared by the CLI and the Dagster definitions.

The access token is deliberately not here: the CLI reads HA_TOKEN when it needs it, and Dagster
resolves it at run time through `dg.EnvVar("HA_TOKEN")`, so it is never stored in a config value.
"""

from __future__ import annotations

import os

from .homeassistant import DEFAULT_MAX_FRAME_SIZE, DEFAULT_TIMEOUT
from .storage import DEFAULT_INSTANCE, default_database_url


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    return default if not value else value in ("1", "true", "yes", "on")


def database_url() -> str:
    return os.environ.get("HOMEIQ_DB_URL") or default_database_url()


def instance() -> str:
    return os.environ.get("HOMEIQ_INSTANCE") or DEFAULT_INSTANCE


def ha_timeout() -> float:
    return float(os.environ.get("HA_TIMEOUT") or DEFAULT_TIMEOUT)


def ha_max_frame_mb() -> float:
    return float(os.environ.get("HA_MAX_FRAME_MB") or DEFAULT_MAX_FRAME_SIZE / 2**20)


def ha_verify_tls() -> bool:
    return env_flag("HA_VERIFY_TLS", True)


def ha_ca_bundle() -> str | None:
    return os.environ.get("HA_CA_BUNDLE") or None


def history_enabled() -> bool:
    """The optional InfluxDB history (off unless STORE_DEVICE_HISTORY_IN_INFLUXDB=true)."""
    return env_flag("STORE_DEVICE_HISTORY_IN_INFLUXDB", False)
