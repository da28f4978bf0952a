"""Every setting read from the environment, in one typed object, built once per process.

`Settings.from_environment()` reads and checks them all; a bad value raises `SettingsError` naming
the variable and what it expects (the CLI turns that into exit code 2, never a traceback).
`current()` is the same object for the Dagster definitions, which are built at import time.

Access tokens are deliberately not here: they are read only where they are used, at run time
(`TOKEN_VARIABLES`; Dagster resolves them through `dg.EnvVar`), so no settings object, log or
config value ever holds one.
"""

from __future__ import annotations

import functools
import os
import re
import zoneinfo
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .homeassistant.client import DEFAULT_MAX_FRAME_SIZE, DEFAULT_TIMEOUT, MiB
from .storage import DEFAULT_INSTANCE

DEFAULT_TOKEN_ENV = "HA_TOKEN"
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
# Read at run time only, never stored in a setting: the single home's token (homes.yaml names
# each home's own variable) and InfluxDB's.
TOKEN_VARIABLES = (DEFAULT_TOKEN_ENV, "INFLUXDB_TOKEN")

# A home's name is a Dagster partition key, a run tag value and the `instance` column: the one
# rule, for homes.yaml, HOMEIQ_INSTANCE, --instance and --home alike.
HOME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
HOME_NAME_RULE = "letters, digits, '-' or '_' (at most 100, starting with a letter or digit)"
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*,/?#-]+$")


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names it and says what it expects."""


def _home_name(value: str) -> str:
    if not HOME_NAME.match(value):
        raise ValueError("cannot name a home")
    return value


def _cron(value: str) -> str:
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(field) for field in fields):
        raise ValueError("not a cron expression")
    return value


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("no such time zone") from None
    return value


def _env(name: str, description: str, **constraints: Any) -> Any:
    """A field read from the environment variable `name`."""
    return Field(validation_alias=name, description=description, **constraints)


class Settings(BaseSettings):
    """The environment variables of homeiq-pipeline (the README's configuration table)."""

    model_config = SettingsConfigDict(
        case_sensitive=True, env_ignore_empty=True, populate_by_name=True, frozen=True, extra="ignore"
    )

    # Home Assistant (a single home; HOMEIQ_HOMES_FILE lists several)
    ha_url: str | None = _env("HA_URL", "http(s)://host:8123 or ws(s)://host:8123/api/websocket", default=None)
    instance: Annotated[str, AfterValidator(_home_name)] = _env(
        "HOMEIQ_INSTANCE", f"a home name: {HOME_NAME_RULE}", default=DEFAULT_INSTANCE
    )
    homes_file: Path | None = _env("HOMEIQ_HOMES_FILE", "the path of a homes.yaml", default=None)
    ha_timeout: float = _env("HA_TIMEOUT", "a number of seconds above 0", default=DEFAULT_TIMEOUT, gt=0)
    ha_max_frame_mb: float = _env(
        "HA_MAX_FRAME_MB", "a number of MiB above 0", default=DEFAULT_MAX_FRAME_SIZE / MiB, gt=0
    )
    ha_ca_bundle: str | None = _env("HA_CA_BUNDLE", "the path of a CA file", default=None)
    ha_verify_tls: bool = _env("HA_VERIFY_TLS", "true or false", default=True)

    # The mirror
    data_dir: Path = _env("HOMEIQ_DATA_DIR", "a folder", default=Path("data"))
    db_url_setting: str | None = _env("HOMEIQ_DB_URL", "a SQLAlchemy URL", default=None)
    demo_db_url_setting: str | None = _env("HOMEIQ_DEMO_DB_URL", "a SQLAlchemy URL", default=None)

    # Dagster
    dagster_home: Path | None = _env("DAGSTER_HOME", "a folder", default=None)
    refresh_cron: Annotated[str, AfterValidator(_cron)] = _env(
        "HA_REFRESH_CRON", "a cron expression of five fields, e.g. '0 * * * *'", default="0 * * * *"
    )
    timezone: Annotated[str, AfterValidator(_timezone)] = _env(
        "HA_TIMEZONE", "an IANA time zone such as UTC or Europe/Berlin", default="UTC"
    )
    sensor_interval_seconds: int = _env(
        "HA_SENSOR_INTERVAL_SECONDS", "a whole number of seconds, at least 1", default=30, ge=1
    )
    freshness_hours: float = _env("HA_FRESHNESS_HOURS", "a number of hours above 0", default=2.0, gt=0)

    # Live mode
    watch_debounce_seconds: float = _env(
        "HA_WATCH_DEBOUNCE_SECONDS", "a number of seconds, 0 or more", default=2.0, ge=0
    )
    dagster_url: str = _env("HOMEIQ_DAGSTER_URL", "the URL of the Dagster webserver", default=DEFAULT_DAGSTER_URL)

    # The optional InfluxDB history
    history_enabled: bool = _env("STORE_DEVICE_HISTORY_IN_INFLUXDB", "true or false", default=False)
    influxdb_url: str | None = _env("INFLUXDB_URL", "the URL of InfluxDB", default=None)
    influxdb_org: str = _env("INFLUXDB_ORG", "an InfluxDB organization", default="homeiq")
    influxdb_bucket: str = _env("INFLUXDB_BUCKET", "an InfluxDB bucket", default="home_assistant")
    influxdb_verify_ssl: bool = _env("INFLUXDB_VERIFY_SSL", "true or false", default=True)
    influxdb_ca_bundle: str | None = _env("INFLUXDB_CA_BUNDLE", "the path of a CA file", default=None)

    @classmethod
    def from_environment(cls) -> Settings:
        """Read and check every setting; raises SettingsError naming each bad variable."""
        try:
            return cls()
        except ValidationError as exc:
            raise SettingsError(_explain(exc)) from None  # the pydantic text would repeat the value

    @property
    def db_url(self) -> str:
        """The mirror: HOMEIQ_DB_URL, else a SQLite file in HOMEIQ_DATA_DIR."""
        return self.db_url_setting or self.sqlite_url("homeiq.db")

    @property
    def demo_db_url(self) -> str:
        """The demo's own mirror, so demo rows never mix with real ones."""
        return self.demo_db_url_setting or self.sqlite_url("demo.db")

    def sqlite_url(self, file_name: str) -> str:
        return f"sqlite:///{self.data_dir.expanduser().resolve() / file_name}"

    @property
    def ha_max_frame_size(self) -> int:
        return int(self.ha_max_frame_mb * MiB)

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Every environment variable read, with what it expects: the settings and the tokens."""
        fields = {str(field.validation_alias): field.description or "" for field in cls.model_fields.values()}
        return {**fields, **dict.fromkeys(TOKEN_VARIABLES, "an access token, read at run time only")}


def _explain(exc: ValidationError) -> str:
    fields = Settings.model_fields
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        location = str(error["loc"][0]) if error["loc"] else ""
        field = fields.get(location) or next((f for f in fields.values() if f.validation_alias == location), None)
        variable = str(field.validation_alias) if field else location
        expected = field.description if field else ""
        reason = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{variable}: expected {expected} ({reason})")
    return "invalid setting: " + "; ".join(problems)


def current() -> Settings:
    """The settings of this process, read once; read again only if the environment changed
    (tests, and Dagster reloading the code location after an edit)."""
    names = [name for name in Settings.variables() if name not in TOKEN_VARIABLES]
    return _settings_for(tuple((name, os.environ[name]) for name in names if name in os.environ))


@functools.lru_cache(maxsize=1)
def _settings_for(environment: tuple[tuple[str, str], ...]) -> Settings:
    return Settings.from_environment()
