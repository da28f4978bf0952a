"""The `homeiq-pipeline` command: its output, exit codes, and that every failure leaves the
database byte-for-byte as it was."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable

import pytest

from homeiq_pipeline import cli

from .fake_ha import FakeHomeAssistant
from .helpers import TOKEN, database_fingerprint


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, db_url: str, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    monkeypatch.setenv("HA_TOKEN", TOKEN)
    monkeypatch.setenv("HOMEIQ_DB_URL", db_url)

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_sync_prints_counts_per_table_and_status_shows_the_run(fake_ha: FakeHomeAssistant, run_cli) -> None:
    code, out, _ = run_cli("sync", "--ha-url", fake_ha.url)
    assert code == cli.EXIT_OK
    devices = len(fake_ha.results["config/device_registry/list"])
    assert f"Synced Home Assistant {fake_ha.ha_version}" in out
    assert any(line.split()[:3] == ["ha_devices", str(devices), str(devices)] for line in out.splitlines())
    code, out, _ = run_cli("status")
    assert code == cli.EXIT_OK
    assert any(line.split()[:3] == ["ha_devices", str(devices), "0"] for line in out.splitlines())
    assert "success" in out


def test_missing_settings_are_named(monkeypatch: pytest.MonkeyPatch, run_cli) -> None:
    monkeypatch.delenv("HA_URL", raising=False)
    monkeypatch.delenv("HA_TOKEN")
    code, _, err = run_cli("sync")
    assert code == cli.EXIT_CONFIG
    assert "HA_URL and HA_TOKEN not set" in err


def test_the_token_cannot_be_given_as_a_flag(run_cli) -> None:
    with pytest.raises(SystemExit):
        run_cli("sync", "--token", "secret")


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


FAULTS: dict[str, tuple[Callable[[FakeHomeAssistant], list[str]], int, str]] = {
    "bad token": (
        lambda s: (setattr(s, "token", "another-token"), [])[1],
        cli.EXIT_AUTH,
        "rejected the access token: Invalid access token or password",
    ),
    "unreachable": (lambda s: ["--ha-url", f"http://127.0.0.1:{_unused_port()}"], cli.EXIT_UNAVAILABLE, "cannot reach Home Assistant"),
    "still starting": (lambda s: (setattr(s, "state", "STARTING"), [])[1], cli.EXIT_UNAVAILABLE, "Home Assistant is still starting"),
    "command error": (
        lambda s: (s.faults.fail.__setitem__("config_entries/get", ("unknown_error", "boom")), [])[1],
        cli.EXIT_HA_ERROR,
        "'config_entries/get' failed: unknown_error: boom",
    ),
    "dropped mid-snapshot": (lambda s: (s.faults.drop.add("get_states"), [])[1], cli.EXIT_UNAVAILABLE, "Home Assistant closed the connection|connection to Home Assistant was lost"),
    "over-limit frame": (lambda s: ["--max-frame-mb", "0.01"], cli.EXIT_HA_ERROR, "more than the configured maximum of 0.0 MiB"),
    "timeout": (lambda s: (s.faults.hang.add("get_states"), ["--timeout", "0.5"])[1], cli.EXIT_UNAVAILABLE, "did not answer within 0.5 s"),
    "unexpected payload": (
        lambda s: (s.results.__setitem__("config/area_registry/list", {"not": "a list"}), [])[1],
        cli.EXIT_HA_ERROR,
        "unexpected payload: config/area_registry/list returned dict, not a list",
    ),
    "data-loss guard": (
        lambda s: (s.results["config/entity_registry/list"].clear(), [])[1],
        cli.EXIT_REFUSED,
        r"refusing to mark \d+ of \d+ ha_entities rows \(100%\) as removed.*--force",
    ),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_failed_sync_names_its_cause_and_leaves_the_database_byte_for_byte_unchanged(
    fault: str, fake_ha: FakeHomeAssistant, run_cli, db_url: str
) -> None:
    assert run_cli("sync", "--ha-url", fake_ha.url)[0] == cli.EXIT_OK
    fake_ha.results["config/device_registry/list"].pop()  # a change a successful sync would write
    before = database_fingerprint(db_url)
    inject, expected_code, message = FAULTS[fault]
    extra = inject(fake_ha)
    code, out, err = run_cli("sync", "--ha-url", fake_ha.url, *extra)
    assert code == expected_code, err
    assert err.count("\n") == 1 and "Nothing was written" in err
    import re

    assert re.search(message, err), err
    assert TOKEN not in err + out
    assert database_fingerprint(db_url) == before


def test_force_passes_the_guard(fake_ha: FakeHomeAssistant, run_cli) -> None:
    run_cli("sync", "--ha-url", fake_ha.url)
    fake_ha.results["config/entity_registry/list"].clear()
    assert run_cli("sync", "--ha-url", fake_ha.url)[0] == cli.EXIT_REFUSED
    code, out, _ = run_cli("sync", "--ha-url", fake_ha.url, "--force")
    assert code == cli.EXIT_OK
    assert any(line.split()[:2] == ["ha_entities", "0"] for line in out.splitlines())


def test_the_console_script_is_installed(fake_ha: FakeHomeAssistant, db_url: str) -> None:
    import os

    env = {**os.environ, "HA_URL": fake_ha.url, "HA_TOKEN": TOKEN, "HOMEIQ_DB_URL": db_url}
    done = subprocess.run(
        [sys.executable, "-m", "homeiq_pipeline.cli", "sync"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert TOKEN not in done.stdout + done.stderr
    assert "ha_config_entries" in done.stdout


def test_an_unusable_database_is_named(fake_ha: FakeHomeAssistant, run_cli, tmp_path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the database's folder should be")
    code, _, err = run_cli("--db-url", f"sqlite:///{blocker}/sub/mirror.db", "status")
    assert code == cli.EXIT_DATABASE
    assert err.startswith("homeiq-pipeline: database error at sqlite:///") and "Not a directory" in err


def test_demo_is_labelled_and_kept_apart_from_real_data(run_cli, monkeypatch: pytest.MonkeyPatch, tmp_path, db_url: str) -> None:
    demo_db = f"sqlite:///{tmp_path / 'demo.db'}"
    monkeypatch.setenv("HOMEIQ_DEMO_DB_URL", demo_db)
    code, out, _ = run_cli("sync", "--demo")
    assert code == cli.EXIT_OK
    assert "DEMO - recorded Home Assistant demo data, not a real home" in out
    code, out, _ = run_cli("--db-url", demo_db, "--instance", "demo", "status")
    assert any(line.split()[:2] == ["ha_config_entries", "4"] for line in out.splitlines())
    code, out, _ = run_cli("status")  # the real mirror saw nothing of it
    assert "No sync has run yet" in out


def test_the_fingerprint_sees_any_change_to_a_row_a_table_or_an_index(fake_ha: FakeHomeAssistant, run_cli, db_url: str) -> None:
    """The check behind "unchanged" above: one changed value, one more row, or one more index
    changes the fingerprint; reading does not."""
    import sqlalchemy as sa

    assert run_cli("sync", "--ha-url", fake_ha.url)[0] == cli.EXIT_OK
    engine = sa.create_engine(db_url)
    before = database_fingerprint(db_url)
    assert run_cli("status")[0] == cli.EXIT_OK and database_fingerprint(db_url) == before
    changes = [
        "UPDATE ha_devices SET name = name || '.' WHERE id = (SELECT min(id) FROM ha_devices)",
        "INSERT INTO ha_sync_runs (instance, started_at, finished_at, outcome, forced, counts) "
        "VALUES ('other', '2026-01-01', '2026-01-01', 'success', false, '{}')",
        "CREATE INDEX ix_extra ON ha_states (state)",
    ]
    seen = {before}
    for change in changes:
        with engine.begin() as connection:
            connection.execute(sa.text(change))
        seen.add(database_fingerprint(db_url))
    engine.dispose()
    assert len(seen) == len(changes) + 1


def test_an_unreachable_postgresql_is_named_without_its_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HA_TOKEN", TOKEN)
    url = f"postgresql+psycopg://homeiq:s3cret-pw@127.0.0.1:{_unused_port()}/mirror"
    code = cli.main(["--db-url", url, "status"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_DATABASE
    assert err.startswith("homeiq-pipeline: database error at postgresql+psycopg://homeiq:***@127.0.0.1:"), err
    assert "s3cret-pw" not in err and "refused" in err.lower()
