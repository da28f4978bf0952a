"""Settings read from the environment, shared by the CLI and the Dagster definitions.

The access token is deliberately not here: the CLI reads HA_TOKEN when it needs it, and Dagster
resolves it at run time through `dg.EnvVar("HA_TOKEN")`, so it is never stored in a config value.
"""

from __future__ import annotations

import os
from pathlib import Path

from .homeassistant import DEFAULT_MAX_FRAME_SIZE, DEFAULT_TIMEOUT
from .homes import DEFAULT_TOKEN_ENV, NAME, Home, HomesFileError, load_homes
from .storage import DEFAULT_INSTANCE, default_database_url


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    return default if not value else value in ("1", "true", "yes", "on")


def database_url() -> str:
    return os.environ.get("HOMEIQ_DB_URL") or default_database_url()


def instance() -> str:
    return os.environ.get("HOMEIQ_INSTANCE") or DEFAULT_INSTANCE


def homes_file() -> Path | None:
    value = os.environ.get("HOMEIQ_HOMES_FILE")
    return Path(value).expanduser() if value else None


def homes() -> list[Home]:
    """Every Home Assistant to mirror: those in HOMEIQ_HOMES_FILE, else one from HA_URL/HA_TOKEN."""
    if path := homes_file():
        return load_homes(path)
    name = instance()
    home = Home(name, os.environ.get("HA_URL") or None, DEFAULT_TOKEN_ENV, ha_verify_tls(), ha_ca_bundle())
    if not NAME.match(name.lower()):  # a partition key and the `instance` column (100 characters)
        raise HomesFileError(f"HOMEIQ_INSTANCE={name!r} cannot name a home: use letters, digits, '-' or '_'")
    return [home]


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
