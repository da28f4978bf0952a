"""Settings: one typed object read from the environment; every variable is in the README's
configuration table and every variable there is read; a bad value names the variable and what it
expects (exit code 2 from the CLI, never a traceback), without repeating the value."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from homeiq_pipeline import settings
from homeiq_pipeline.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "homeiq_pipeline"


def documented_variables() -> set[str]:
    """The first column of the README's configuration table (`HA_VERIFY_TLS=false` -> HA_VERIFY_TLS)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if match := re.match(r"^\| `([A-Z_]+)(=[^`]*)?` \|", line):
            names.add(match.group(1))
    return names


def test_every_variable_read_is_documented_and_every_documented_variable_is_read() -> None:
    assert documented_variables() == set(Settings.variables())


def test_no_module_but_the_settings_reads_the_environment() -> None:
    """Values come from the one settings object; the exceptions are a home's token (read where it
    is used, never stored) and the launcher, which hands the environment to `dagster dev`."""
    readers = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if re.search(r"os\.environ|getenv\(", path.read_text(encoding="utf-8"))
    }
    assert readers == {"settings.py", "homes.py", "launcher.py"}


# What each variable expects, and a value it refuses.
REFUSED = {
    "HA_TIMEOUT=abc": "a number of seconds above 0",
    "HA_TIMEOUT=0": "a number of seconds above 0",
    "HA_MAX_FRAME_MB=-1": "a number of MiB above 0",
    "HA_VERIFY_TLS=maybe": "true or false",
    "HA_SENSOR_INTERVAL_SECONDS=0.5": "a whole number of seconds",
    "HA_FRESHNESS_HOURS=soon": "a number of hours above 0",
    "HA_REFRESH_CRON=hourly": "a cron expression",
    "HA_TIMEZONE=Mars/Olympus_Mons": "an IANA time zone",
    "HA_WATCH_DEBOUNCE_SECONDS=-2": "a number of seconds, 0 or more",
    "HOMEIQ_INSTANCE=living room": "a home name",
    "STORE_DEVICE_HISTORY_IN_INFLUXDB=perhaps": "true or false",
    "INFLUXDB_VERIFY_SSL=sometimes": "true or false",
}


@pytest.mark.parametrize(("setting", "expected"), REFUSED.items())
def test_a_bad_value_names_the_variable_and_what_it_expects(
    monkeypatch: pytest.MonkeyPatch, setting: str, expected: str
) -> None:
    variable, value = setting.split("=", 1)
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as refused:
        Settings.from_environment()
    message = str(refused.value)
    assert f"{variable}: expected {expected}" in message
    assert repr(value) not in message and f"={value}" not in message  # the value is not repeated


def test_empty_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HA_TIMEOUT", "")
    monkeypatch.setenv("HA_VERIFY_TLS", "")
    loaded = Settings.from_environment()
    assert (loaded.ha_timeout, loaded.ha_verify_tls) == (30.0, True)


def test_the_cli_refuses_a_bad_value_with_exit_code_2_and_no_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "homeiq_pipeline.cli", "--help"],
        env={"PATH": "/usr/bin:/bin", "HA_TIMEOUT": "abc"}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result
    assert result.stderr.startswith("homeiq-pipeline: invalid setting: HA_TIMEOUT: expected a number of seconds")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_the_settings_are_read_once_and_again_only_when_the_environment_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HA_FRESHNESS_HOURS", "3")
    first = settings.current()
    assert settings.current() is first and first.freshness_hours == 3
    monkeypatch.setenv("HA_FRESHNESS_HOURS", "4")
    assert settings.current() is not first and settings.current().freshness_hours == 4


def test_a_token_is_never_part_of_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HA_TOKEN", "a-token-0123456789")
    monkeypatch.setenv("INFLUXDB_TOKEN", "another-token-0123456789")
    loaded = settings.current()
    assert "token-0123456789" not in repr(loaded) and "token-0123456789" not in loaded.model_dump_json()
