"""The `homeiq-pipeline` command: its output, exit codes, and that every failure leaves the
database byte-for-byte as it was."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from homeiq_pipeline import cli

from .fake_ha import FakeHomeAssistant
from .helpers import TOKEN, database_fingerprint, wait_for


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
    assert "No sync has run yet" in out or "No mirror at" in out  # (a SQLite file is not even there)


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


# -- what a person sees around a sync: status without a mirror, the demo's, logging, pipes, Ctrl-C --


def test_status_without_a_mirror_says_so_and_creates_nothing(run_cli, tmp_path: Path) -> None:
    missing = tmp_path / "data" / "homeiq.db"
    code, out, err = run_cli("--db-url", f"sqlite:///{missing}", "status")
    assert code == cli.EXIT_OK and err == ""
    assert out == f"No mirror at sqlite:///{missing} yet: run `homeiq-pipeline sync` (or `make run`)\n"
    assert not missing.exists() and not missing.parent.exists()


def test_status_demo_shows_the_demo_mirror(run_cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    demo_db = tmp_path / "demo.db"
    monkeypatch.setenv("HOMEIQ_DEMO_DB_URL", f"sqlite:///{demo_db}")
    code, out, _ = run_cli("status", "--demo")
    assert code == cli.EXIT_OK and not demo_db.exists()
    assert out == f"No mirror at sqlite:///{demo_db} yet: run `homeiq-pipeline sync --demo` (or `make demo`)\n"
    code, out, _ = run_cli("sync", "--demo")
    assert code == cli.EXIT_OK and out.endswith("Try: homeiq-pipeline status --demo\n")
    code, out, _ = run_cli("status", "--demo")
    assert code == cli.EXIT_OK and out.startswith(f"Mirror sqlite:///{demo_db}, instance 'demo'\n")
    assert any(line.split()[:2] == ["ha_config_entries", "4"] for line in out.splitlines())


def _cli_env(fake_ha: FakeHomeAssistant, db_url: str) -> dict[str, str]:
    env = {**os.environ, "HA_URL": fake_ha.url, "HA_TOKEN": TOKEN, "HOMEIQ_DB_URL": db_url}
    env.pop("HOMEIQ_HOMES_FILE", None)
    return env


def _log_lines_only(err: str) -> bool:
    """stderr holds the INFO lines a person reads, and no message besides."""
    return all(line.startswith("INFO ") for line in err.splitlines())


def test_the_cli_logs_what_a_person_reads_and_the_details_only_with_verbose(
    fake_ha: FakeHomeAssistant, db_url: str, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "homeiq_pipeline.cli"]
    quiet = subprocess.run([*command, "sync"], env=_cli_env(fake_ha, db_url), capture_output=True, text=True, timeout=60,
                           check=False)
    assert quiet.returncode == 0, quiet.stderr
    assert f"INFO authenticated to Home Assistant {fake_ha.ha_version} at ws://" in quiet.stderr
    assert _log_lines_only(quiet.stderr) and "alembic" not in quiet.stderr  # its migrations ran, unannounced
    loud = subprocess.run([*command, "--verbose", "sync"], env=_cli_env(fake_ha, db_url), capture_output=True, text=True,
                          timeout=60, check=False)
    assert loud.returncode == 0, loud.stderr
    assert "INFO alembic.runtime.migration:" in loud.stderr and "homeiq_pipeline.homeassistant.client: authenticated" in loud.stderr


def _sync_held_at_get_states(fake_ha: FakeHomeAssistant, db_url: str) -> tuple[subprocess.Popen[str], threading.Event]:
    """`homeiq-pipeline sync` in a process of its own, waiting for HA's states (until the event is set)."""
    release = threading.Event()
    fake_ha.faults.hold["get_states"] = release
    seen = fake_ha.commands_seen.count("get_states")
    process = subprocess.Popen([sys.executable, "-m", "homeiq_pipeline.cli", "sync"], env=_cli_env(fake_ha, db_url),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for("the sync to wait for HA's states", lambda: fake_ha.commands_seen.count("get_states") > seen, timeout=60,
             every=0.05)
    return process, release


def test_a_closed_stdout_after_a_committed_sync_is_exit_141_without_a_message(
    fake_ha: FakeHomeAssistant, run_cli, db_url: str
) -> None:
    assert run_cli("sync", "--ha-url", fake_ha.url)[0] == cli.EXIT_OK
    fake_ha.results["config/device_registry/list"].pop()  # a change the sync below writes
    before = database_fingerprint(db_url)
    process, release = _sync_held_at_get_states(fake_ha, db_url)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader goes away (`| head` that has read its line) before the sync writes its report
    release.set()
    err = process.stderr.read()
    assert process.wait(timeout=60) == cli.EXIT_PIPE_CLOSED
    assert _log_lines_only(err), err  # no "database error ... Broken pipe", no traceback
    assert database_fingerprint(db_url) != before  # the sync was committed, as exit 141 (not 7) says
    code, out, _ = run_cli("status")
    assert code == cli.EXIT_OK and out.count("success") == 2


def test_sync_piped_into_head_shows_its_first_line_and_no_error(fake_ha: FakeHomeAssistant, db_url: str) -> None:
    shell = f'"{sys.executable}" -m homeiq_pipeline.cli sync | head -1; exit "${{PIPESTATUS[0]}}"'
    done = subprocess.run(["bash", "-c", shell], env=_cli_env(fake_ha, db_url), capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode in (cli.EXIT_OK, cli.EXIT_PIPE_CLOSED), done.stderr
    assert done.stdout.startswith(f"Synced Home Assistant {fake_ha.ha_version}") and done.stdout.count("\n") == 1
    assert _log_lines_only(done.stderr), done.stderr


def test_ctrl_c_during_a_sync_writes_nothing_and_says_so(fake_ha: FakeHomeAssistant, run_cli, db_url: str) -> None:
    assert run_cli("sync", "--ha-url", fake_ha.url)[0] == cli.EXIT_OK
    fake_ha.results["config/device_registry/list"].pop()  # a change a finished sync would write
    before = database_fingerprint(db_url)
    process, release = _sync_held_at_get_states(fake_ha, db_url)
    try:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        release.set()
    assert process.returncode == cli.EXIT_INTERRUPTED, err
    assert out == "" and err.splitlines()[-1] == "homeiq-pipeline: interrupted: nothing was written"
    assert _log_lines_only("\n".join(err.splitlines()[:-1])), err
    assert database_fingerprint(db_url) == before


def test_a_closed_stderr_changes_no_exit_code(fake_ha: FakeHomeAssistant, run_cli, db_url: str) -> None:
    """`2>&1 | head`: once the reader is gone, neither a failure's message nor the log lines of a
    sync turn into a traceback or a different exit code."""
    env = _cli_env(fake_ha, db_url)
    command = [sys.executable, "-m", "homeiq_pipeline.cli"]

    def with_stderr_closed(*args: str) -> int:
        process = subprocess.Popen([*command, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert process.stderr is not None
        process.stderr.close()  # before the child has written anything: each of its writes meets a closed pipe
        return process.wait(timeout=60)

    assert with_stderr_closed("sync", "--ha-url", f"http://127.0.0.1:{_unused_port()}") == cli.EXIT_UNAVAILABLE
    assert with_stderr_closed("--verbose", "sync") == cli.EXIT_OK  # every log line of a sync, lost
    code, out, _ = run_cli("status")
    assert code == cli.EXIT_OK and out.count("success") == 1  # that sync was committed, as exit 0 says
