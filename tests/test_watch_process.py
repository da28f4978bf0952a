"""`homeiq-pipeline watch` as a process: it stops cleanly on SIGTERM, stops at once (exit 4) on a
rejected token without trying again, never shows the token, and a SIGKILLed watcher loses nothing:
the next one's first connection syncs what changed meanwhile."""

from __future__ import annotations

import functools
import inspect
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from homeiq_pipeline import cli, launcher, storage
from homeiq_pipeline.cli import watch as cli_watch
from homeiq_pipeline.cli.run import local_dagster_url
from homeiq_pipeline.storage.schema import areas, devices

from . import helpers
from .fake_ha import FakeHomeAssistant
from .helpers import TOKEN, free_port
from .mirror_checks import assert_mirror_equals_ha, live_rows

EXIT_AUTH = 4
wait_for = functools.partial(helpers.wait_for, timeout=60, every=0.1)
# `homeiq-pipeline` that prints the stack of each of its threads into its log on SIGUSR1 (see `held`).
CLI_DUMPING_STACKS = ("import faulthandler, runpy, signal; faulthandler.register(signal.SIGUSR1); "
                      "runpy.run_module('homeiq_pipeline.cli', run_name='__main__')")


@contextmanager
def watcher(server: FakeHomeAssistant, db_url: str, log: Path, token: str = TOKEN,
            *options: str) -> Iterator[subprocess.Popen[bytes]]:
    """`homeiq-pipeline watch --direct` against `server`, its output in `log`; SIGKILLed if still running after."""
    env = {**os.environ, "HA_URL": server.url, "HA_TOKEN": token, "HOMEIQ_DB_URL": db_url,
           "HA_WATCH_DEBOUNCE_SECONDS": "0.3"}
    env.pop("HOMEIQ_HOMES_FILE", None)
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-c", CLI_DUMPING_STACKS, "watch", "--direct", *options],
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def lines(log: Path, text: str) -> int:
    return sum(text in line for line in log.read_text().splitlines())


def held(process: subprocess.Popen[bytes], log: Path) -> bool:
    """The watcher process has nothing left to do but wait for SIGTERM: its one thread left (no
    watcher that could log in again, no loop that touches the heartbeat) waits in the hold of
    `watch` (its untimed `stop.wait()`), as the stacks it prints on SIGUSR1 show."""
    source, first = inspect.getsourcelines(cli_watch.command)
    [hold] = [first + n for n, line in enumerate(source) if line.strip().startswith("stop.wait()")]
    start = log.stat().st_size
    process.send_signal(signal.SIGUSR1)

    def stacks() -> str:  # complete once the main thread's (printed last) reaches its outermost frame
        text = log.read_bytes()[start:].decode(errors="replace")
        return text if text.endswith('File "<string>", line 1 in <module>\n') else ""

    dump = wait_for("the stacks", stacks, timeout=10)
    return dump.count("(most recent call first)") == 1 and f'{cli_watch.__file__}", line {hold} in command' in dump


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
    assert lines(log, "; connected sync owed") == 2  # two starts, not a reconnect
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
        wait_for("the hold", lambda: held(process, log))
        assert process.poll() is None and fake_ha.auth_failures == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == EXIT_AUTH


def healthy(tmp_path: Path, heartbeat: Path) -> bool:
    """docker/healthcheck.sh as the watcher's container runs it."""
    (tmp_path / "role").write_text("homeiq-pipeline\n")
    env = {**os.environ, "HOMEIQ_ROLE_FILE": str(tmp_path / "role"), "HOMEIQ_WATCH_HEARTBEAT": str(heartbeat)}
    script = Path(__file__).resolve().parent.parent / "docker" / "healthcheck.sh"
    return subprocess.run(["sh", str(script)], env=env, check=False, timeout=30).returncode == 0


def test_the_health_check_sees_a_watcher_held_after_a_rejected_token(fake_ha: FakeHomeAssistant, tmp_path: Path) -> None:
    heartbeat, log, db_url = tmp_path / "heartbeat", tmp_path / "watch.log", f"sqlite:///{tmp_path / 'mirror.db'}"
    with watcher(fake_ha, db_url, log, TOKEN, "--heartbeat-file", str(heartbeat)) as process:
        wait_for("the first sync", lambda: lines(log, "requested sync run") == 1)
        first = wait_for("a heartbeat", lambda: heartbeat.exists() and heartbeat.stat().st_mtime)
        wait_for("the next heartbeat", lambda: heartbeat.stat().st_mtime > first)
        assert healthy(tmp_path, heartbeat)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    heartbeat.unlink()
    with watcher(fake_ha, db_url, log, "wrong-token", "--hold-on-auth-failure", "--heartbeat-file", str(heartbeat)) as process:
        wait_for("the refusal", lambda: lines(log, "The watcher stopped"))
        stale = time.time() - 61  # as if a minute had passed: never touched after the refusal
        os.utime(heartbeat, (stale, stale))
        wait_for("the hold", lambda: held(process, log))
        assert heartbeat.stat().st_mtime == stale
        assert not healthy(tmp_path, heartbeat)
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == EXIT_AUTH
    assert healthy(tmp_path, tmp_path / "no-heartbeat")  # a one-off command: nothing to watch


def test_the_compose_file_runs_the_watcher_as_a_service_of_its_own() -> None:
    compose = yaml.safe_load((Path(__file__).resolve().parent.parent / "docker" / "docker-compose.yml").read_text())
    watcher_service = compose["services"]["watcher"]
    assert watcher_service["command"] == ["homeiq-pipeline", "watch", "--hold-on-auth-failure",
                                          "--heartbeat-file", "/tmp/homeiq-watch-heartbeat"]
    assert "profiles" not in watcher_service  # it runs with the webserver and the daemon
    assert "ports" not in watcher_service
    assert watcher_service["environment"]["HOMEIQ_DAGSTER_URL"] == "${HOMEIQ_DAGSTER_URL:-http://dagster-webserver:3000}"


def test_missing_or_invalid_settings_stop_the_watcher_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
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


# -- many homes ----------------------------------------------------------------------------------

CABIN_TOKEN = "the-cabins-token-never-shown"


@pytest.fixture
def two_homes(fake_ha: FakeHomeAssistant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """A homes.yaml with `home` (fake_ha) and `cabin` (a server of its own, another token variable),
    set as HOMEIQ_HOMES_FILE, with neither HA_URL nor HA_TOKEN set: the README's recipe."""
    with FakeHomeAssistant(token=CABIN_TOKEN) as cabin:
        with cabin.lock:  # a smaller home, to tell the homes' rows apart
            cabin.results["config/device_registry/list"] = cabin.results["config/device_registry/list"][:3]
        path = tmp_path / "homes.yaml"
        path.write_text(yaml.safe_dump({"homes": [
            {"name": "home", "url": fake_ha.url, "token_env": "TEST_TOKEN_HOME"},
            {"name": "cabin", "url": cabin.url, "token_env": "TEST_TOKEN_CABIN"},
        ]}))
        for name in ("HA_URL", "HA_TOKEN", "DAGSTER_HOME"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HOMEIQ_DATA_DIR", str(tmp_path / "data"))  # `run`'s DAGSTER_HOME (and its lock) too
        monkeypatch.setenv("HOMEIQ_HOMES_FILE", str(path))
        monkeypatch.setenv("TEST_TOKEN_HOME", TOKEN)
        monkeypatch.setenv("TEST_TOKEN_CABIN", CABIN_TOKEN)
        yield SimpleNamespace(path=path, cabin=cabin)


def test_run_with_a_homes_file_needs_no_ha_url_and_names_a_missing_token_variable(
    two_homes: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[int] = []
    monkeypatch.setattr(launcher, "run_dagster", lambda settings, env, host, port: started.append(port) or 0)
    assert cli.main(["run", "--port", "3999"]) == cli.EXIT_OK
    assert started == [3999]  # no HA_URL, no HA_TOKEN, and Dagster was started

    monkeypatch.delenv("TEST_TOKEN_CABIN")
    for command in (["run"], ["run", "--watch"], ["watch"]):
        assert cli.main(command) == cli.EXIT_CONFIG
        error = capsys.readouterr().err
        assert "TEST_TOKEN_CABIN not set" in error and "'cabin'" in error, error
        assert TOKEN not in error and "HA_URL" not in error
    assert started == [3999]

    two_homes.path.write_text("homes:\n  - name: home\n    url: http://127.0.0.1:1\n    token_env: pasted token here\n")
    assert cli.main(["run"]) == cli.EXIT_CONFIG
    error = capsys.readouterr().err
    assert "token_env must name an environment variable" in error and "pasted token here" not in error


def test_run_watch_with_a_homes_file_watches_every_home(
    two_homes: SimpleNamespace, fake_ha: FakeHomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    cabin: FakeHomeAssistant = two_homes.cabin

    def dagster(home: Path, env: dict[str, str], host: str, port: int) -> int:
        # Standing in for the webserver (the watchers start once it answers): returns once a
        # watcher has subscribed to each home's events (`run`'s look before only asks get_config).
        with helpers.answering_server_info(port):
            wait_for("a watcher on each home",
                     lambda: all("subscribe_events" in ha.commands_seen for ha in (fake_ha, cabin)), timeout=30)
        return 0

    monkeypatch.setattr(launcher, "run_dagster", dagster)
    assert cli.main(["run", "--watch", "--port", str(free_port())]) == cli.EXIT_OK
    assert fake_ha.auth_failures == cabin.auth_failures == 0  # each with its own token


def test_watch_with_a_homes_file_and_no_home_watches_every_home(
    two_homes: SimpleNamespace, fake_ha: FakeHomeAssistant, tmp_path: Path
) -> None:
    db_url, log = f"sqlite:///{tmp_path / 'mirror.db'}", tmp_path / "watch.log"
    env = {**os.environ, "HOMEIQ_DB_URL": db_url, "HA_WATCH_DEBOUNCE_SECONDS": "0.3"}
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "homeiq_pipeline.cli", "watch", "--direct"],
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for("a sync of each home", lambda: lines(log, "requested sync run") == 2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    output = log.read_text()
    assert lines(log, "of home 'home': connected") == 1 and lines(log, "of home 'cabin': connected") == 1
    assert TOKEN not in output and CABIN_TOKEN not in output
    engine = storage.open_database(db_url)
    try:
        assert_mirror_equals_ha(engine, fake_ha.results, instance="home")
        assert_mirror_equals_ha(engine, two_homes.cabin.results, instance="cabin")  # each home its own rows
    finally:
        engine.dispose()


def test_the_watcher_under_run_reaches_a_webserver_listening_on_every_address() -> None:
    for host, hostname in [("0.0.0.0", "127.0.0.1"), ("", "127.0.0.1"), ("::", "::1"), ("::1", "::1"),
                           ("127.0.0.1", "127.0.0.1"), ("localhost", "localhost")]:
        url = urllib.parse.urlsplit(local_dagster_url(host, 3000))
        assert (url.hostname, url.port) == (hostname, 3000), host
