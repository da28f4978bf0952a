"""`homeiq-pipeline watch` as a process: it stops cleanly on SIGTERM, stops at once (exit 4) on a
rejected token without trying again, never shows the token, and a SIGKILLed watcher loses nothing:
the next one's first connection syncs what changed meanwhile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from homeiq_pipeline import storage
from homeiq_pipeline.demo.server import FakeHomeAssistant
from homeiq_pipeline.storage.schema import areas, devices

from .conftest import TOKEN
from .mirror_checks import live_rows

EXIT_AUTH = 4


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)
    return value


@contextmanager
def watcher(server: FakeHomeAssistant, db_url: str, log: Path, token: str = TOKEN,
            *options: str) -> Iterator[subprocess.Popen[bytes]]:
    """`homeiq-pipeline watch --direct` against `server`, its output in `log`; SIGKILLed if still running after."""
    env = {**os.environ, "HA_URL": server.url, "HA_TOKEN": token, "HOMEIQ_DB_URL": db_url,
           "HA_WATCH_DEBOUNCE_SECONDS": "0.3"}
    env.pop("HOMEIQ_HOMES_FILE", None)
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "homeiq_pipeline.cli", "watch", "--direct", *options],
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def lines(log: Path, text: str) -> int:
    return sum(text in line for line in log.read_text().splitlines())


def test_sigterm_stops_the_watcher_cleanly_and_the_token_is_never_shown(fake_ha: FakeHomeAssistant, tmp_path: Path) -> None:
    log = tmp_path / "watch.log"
    with watcher(fake_ha, f"sqlite:///{tmp_path / 'mirror.db'}", log) as process:
        wait_for("the first sync", lambda: lines(log, "requested sync run") == 1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    output = log.read_text()
    assert "watcher stopped" in output.splitlines()[-1]
    assert TOKEN not in output


def test_a_rejected_token_stops_the_watcher_at_once_without_trying_again(fake_ha: FakeHomeAssistant, tmp_path: Path) -> None:
    log = tmp_path / "watch.log"
    wrong = "wrong-token-never-to-be-shown"
    with watcher(fake_ha, f"sqlite:///{tmp_path / 'mirror.db'}", log, token=wrong) as process:
        assert process.wait(timeout=30) == EXIT_AUTH
    output = log.read_text()
    assert "rejected the access token" in output and "stopping the watcher" in output
    assert fake_ha.auth_failures == 1  # one attempt: HA bans addresses after repeated failures
    assert wrong not in output and TOKEN not in output


def test_a_killed_watcher_loses_nothing_the_next_one_catches_up(fake_ha: FakeHomeAssistant, tmp_path: Path) -> None:
    log, db_url = tmp_path / "watch.log", f"sqlite:///{tmp_path / 'mirror.db'}"
    device = fake_ha.results["config/device_registry/list"][2]
    with watcher(fake_ha, db_url, log) as process:
        wait_for("the first sync", lambda: lines(log, "requested sync run") == 1)
        process.kill()  # SIGKILL: no goodbye
        process.wait(timeout=10)
    # Changes while no watcher listens; the first one is announced to nobody.
    fake_ha.change("config/device_registry/update", device_id=device["id"], name_by_user="Renamed while killed")
    area = fake_ha.change("config/area_registry/create", name="Made while killed")
    with watcher(fake_ha, db_url, log):
        wait_for("the catch-up sync", lambda: lines(log, "requested sync run") == 2)
    assert lines(log, "connected sync owed") == 2
    engine = storage.open_database(db_url)
    try:
        assert live_rows(engine, devices)[device["id"]]["name_by_user"] == "Renamed while killed"
        assert area["area_id"] in live_rows(engine, areas)
    finally:
        engine.dispose()


def test_held_after_a_rejected_token_it_waits_for_sigterm_without_trying_again(
    fake_ha: FakeHomeAssistant, tmp_path: Path
) -> None:
    # As the compose file runs it: a container restarted on exit must not log in again and again.
    log = tmp_path / "watch.log"
    with watcher(fake_ha, f"sqlite:///{tmp_path / 'mirror.db'}", log, "wrong-token", "--hold-on-auth-failure") as process:
        wait_for("the refusal", lambda: lines(log, "The watcher stopped"))
        time.sleep(1.0)
        assert process.poll() is None and fake_ha.auth_failures == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == EXIT_AUTH


def test_the_compose_file_runs_the_watcher_as_a_service_of_its_own() -> None:
    compose = yaml.safe_load((Path(__file__).resolve().parent.parent / "docker" / "docker-compose.yml").read_text())
    watcher_service = compose["services"]["watcher"]
    assert watcher_service["command"] == ["homeiq-pipeline", "watch", "--hold-on-auth-failure"]
    assert "profiles" not in watcher_service  # it runs with the webserver and the daemon
    assert "ports" not in watcher_service
    assert watcher_service["environment"]["HOMEIQ_DAGSTER_URL"] == "${HOMEIQ_DAGSTER_URL:-http://dagster-webserver:3000}"


def test_missing_or_invalid_settings_stop_the_watcher_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from homeiq_pipeline import cli

    monkeypatch.delenv("HOMEIQ_HOMES_FILE", raising=False)
    monkeypatch.setenv("HA_TOKEN", "a-token-never-shown")
    assert cli.main(["watch", "--ha-url", "homeassistant.local"]) == 2
    assert "not a Home Assistant URL" in capsys.readouterr().err
    monkeypatch.delenv("HA_TOKEN")
    assert cli.main(["watch", "--ha-url", "http://127.0.0.1:8123"]) == 2
    assert "HA_TOKEN not set" in capsys.readouterr().err
    homes = tmp_path / "homes.yaml"
    homes.write_text("homes:\n  - name: cabin\n    url: http://127.0.0.1:8123\n")
    monkeypatch.setenv("HOMEIQ_HOMES_FILE", str(homes))
    monkeypatch.setenv("HA_TOKEN", "a-token-never-shown")
    assert cli.main(["watch", "--home", "home"]) == 2
    error = capsys.readouterr().err
    assert "has no home 'home' (it has cabin); pass --home" in error and "a-token-never-shown" not in error
