"""`homeiq-pipeline run` before Dagster starts, with Dagster itself stood in for: one look at each
home (a rejected token or an untrusted certificate stops it as `sync` would, an unreachable HA is
a warning), one `run` per DAGSTER_HOME and per port (a second is refused at once, naming the
first), the demo on an instance of its own, and the watcher, on by default, started once the UI
answers. (tests/e2e/test_demo_run.py starts the real thing.)"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme

from homeiq_pipeline import cli, launcher
from homeiq_pipeline import homeassistant as ha
from homeiq_pipeline.cli import run as cli_run
from homeiq_pipeline.cli.watch import WatcherThreads, watchers_for
from homeiq_pipeline.watch import DagsterRuns

from .fake_ha import FakeHomeAssistant
from .helpers import TOKEN, answering_server_info, free_port, wait_for
from .test_tls import tls_server


@dataclass
class StandIn:
    """Stands in for `launcher.run_dagster`: records each start instead of starting Dagster."""

    starts: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, home: Path, env: dict[str, str], host: str, port: int) -> int:
        self.starts.append({"home": home, "env": dict(env), "port": port})
        return cli.EXIT_OK


@pytest.fixture
def dagster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_ha: FakeHomeAssistant) -> StandIn:
    """`run` against fake_ha, its data (and so its DAGSTER_HOME) in tmp_path/data, Dagster stood in for."""
    for name in ("DAGSTER_HOME", "HOMEIQ_HOMES_FILE", "HOMEIQ_DB_URL", "HOMEIQ_DEMO_DB_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HA_URL", fake_ha.url)
    monkeypatch.setenv("HA_TOKEN", TOKEN)
    stand_in = StandIn()
    monkeypatch.setattr(launcher, "run_dagster", stand_in)
    return stand_in


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["run", "--port", str(free_port()), "--no-watch", *args])
    out, err = capsys.readouterr()
    return code, out, err


# -- the look at each home ----------------------------------------------------------------------


def test_a_rejected_token_stops_run_before_dagster_with_the_message_and_exit_code_of_sync(
    dagster: StandIn, fake_ha: FakeHomeAssistant, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fake_ha.token = "what-ha-really-expects"
    synced = cli.main(["--db-url", f"sqlite:///{tmp_path / 'mirror.db'}", "sync"])
    sync_error = capsys.readouterr().err
    code, _, err = run(capsys)
    assert code == synced == cli.EXIT_AUTH
    assert err.count("\n") == 1 and "rejected the access token: Invalid access token or password" in err
    assert err.split(". Dagster was not started")[0] == sync_error.split(". Nothing was written")[0]
    assert err.endswith("Dagster was not started (run --no-check starts it anyway).\n")
    assert dagster.starts == []
    assert fake_ha.auth_failures == 2  # one look each, never a retry
    assert TOKEN not in err


def test_an_untrusted_certificate_stops_run_before_dagster_with_exit_code_2(
    dagster: StandIn, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with tls_server(trustme.CA(), "127.0.0.1") as https_ha:
        monkeypatch.setenv("HA_URL", https_ha.url)
        code, _, err = run(capsys)
        assert https_ha.connections == https_ha.auth_failures == 0  # the token was never sent
    assert code == cli.EXIT_CONFIG
    assert err.startswith("homeiq-pipeline: TLS handshake with Home Assistant failed") and "CERTIFICATE_VERIFY_FAILED" in err
    assert err.count("\n") == 1 and "Dagster was not started" in err
    assert dagster.starts == []


def test_an_unreachable_home_is_one_warning_and_dagster_starts_anyway(
    dagster: StandIn, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HA_URL", f"http://127.0.0.1:{free_port()}")
    code, _, err = run(capsys)
    assert code == cli.EXIT_OK and len(dagster.starts) == 1
    assert err.count("\n") == 1
    assert err.startswith("homeiq-pipeline: warning: cannot reach Home Assistant at ws://127.0.0.1:")
    assert err.endswith("; starting Dagster anyway: its sensor syncs once Home Assistant answers\n")


def test_a_reachable_home_is_looked_at_once_and_no_check_does_not_look(
    dagster: StandIn, fake_ha: FakeHomeAssistant, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys)
    assert code == cli.EXIT_OK and err == "" and len(dagster.starts) == 1
    assert fake_ha.connections == 1 and fake_ha.commands_seen == ["supported_features", "get_config"]
    fake_ha.token = "rejected-now"
    code, _, err = run(capsys, "--no-check")
    assert code == cli.EXIT_OK and err == "" and len(dagster.starts) == 2
    assert fake_ha.connections == 1 and fake_ha.auth_failures == 0  # not contacted at all


# -- one run per instance and per port ------------------------------------------------------------

# A process holding an instance's lock as `run` does (and, with "listen", its port): a live first `run`.
HOLDER = """
import socket, sys
from pathlib import Path
from homeiq_pipeline.cli.run_lock import running_alone
home, port = Path(sys.argv[1]), int(sys.argv[2])
with running_alone(home, f"http://127.0.0.1:{port}", "127.0.0.1", port):
    server = socket.create_server(("127.0.0.1", port)) if sys.argv[3] == "listen" else None
    print("holding", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def first_run() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    held: list[subprocess.Popen[str]] = []

    def start(home: Path, port: int, listen: bool = False) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(home), str(port), "listen" if listen else "-"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        held.append(process)
        assert process.stdout is not None and process.stdout.readline() == "holding\n"
        return process

    yield start
    for process in held:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_a_second_run_on_the_same_dagster_home_is_refused_at_once_naming_the_first(
    dagster: StandIn, first_run: Callable[..., subprocess.Popen[str]], fake_ha: FakeHomeAssistant,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    home, port = tmp_path / "data" / "dagster", free_port()
    first = first_run(home, port)
    code = cli.main(["run", "--port", str(free_port()), "--no-watch"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_CONFIG and dagster.starts == []
    assert err == (
        f"homeiq-pipeline: another `homeiq-pipeline run` is already running on DAGSTER_HOME={home} "
        f"(pid {first.pid}, UI at http://127.0.0.1:{port}): stop it first (Ctrl-C in its terminal, or `kill {first.pid}`)\n"
    )
    assert fake_ha.connections == 0  # refused before looking at any home
    first.stdin.close()  # type: ignore[union-attr]  # the first one ends: its lock goes with it
    first.wait(timeout=30)
    code, _, err = run(capsys)
    assert code == cli.EXIT_OK and err == "" and len(dagster.starts) == 1


def test_a_port_in_use_is_refused_at_once(dagster: StandIn, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        code = cli.main(["run", "--port", str(port), "--no-watch"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_CONFIG and dagster.starts == []
    assert err == f"homeiq-pipeline: port {port} is already in use by another program: stop it, or pick another with --port\n"


def test_run_on_the_port_of_a_running_demo_names_the_demo(
    dagster: StandIn, first_run: Callable[..., subprocess.Popen[str]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    demo_home, port = tmp_path / "data" / "demo" / "dagster", free_port()
    demo = first_run(demo_home, port, listen=True)  # `make demo`, then `make run` in the same checkout
    code = cli.main(["run", "--port", str(port), "--no-watch"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_CONFIG and dagster.starts == []
    assert err == (
        f"homeiq-pipeline: port {port} is already in use by another `homeiq-pipeline run` (pid {demo.pid}, "
        f"UI at http://127.0.0.1:{port}, DAGSTER_HOME={demo_home}): stop it, or pick another with --port\n"
    )


# -- the demo's own instance ----------------------------------------------------------------------


def test_the_demo_runs_on_an_instance_and_database_of_its_own(
    dagster: StandIn, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = (tmp_path / "data").resolve()
    assert run(capsys)[0] == cli.EXIT_OK
    assert run(capsys, "--demo", "--demo-ha-port", str(free_port()))[0] == cli.EXIT_OK
    real, demo = dagster.starts
    assert real["home"] == data / "dagster" and real["env"]["HOMEIQ_DB_URL"] == f"sqlite:///{data / 'homeiq.db'}"
    assert demo["home"] == data / "demo" / "dagster" and demo["env"]["HOMEIQ_DB_URL"] == f"sqlite:///{data / 'demo.db'}"
    assert demo["env"]["HOMEIQ_INSTANCE"] == "demo"
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "mine"))  # a DAGSTER_HOME of one's own is the real one's
    assert run(capsys)[0] == run(capsys, "--demo", "--demo-ha-port", str(free_port()))[0] == cli.EXIT_OK
    assert [start["home"] for start in dagster.starts[2:]] == [(tmp_path / "mine").resolve(), data / "demo" / "dagster"]


# -- the watcher ----------------------------------------------------------------------------------


def test_run_starts_the_watcher_unless_told_not_to(
    dagster: StandIn, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    made: list[object] = []
    monkeypatch.setattr(cli_run, "WatcherThreads", lambda *args, **kwargs: made.append(kwargs) or WatcherThreads([]))
    for flags, watchers in ([], 1), (["--watch"], 2), (["--no-watch"], 2):  # --watch: accepted, as before
        assert cli.main(["run", "--port", str(free_port()), *flags]) == cli.EXIT_OK
        assert len(made) == watchers, flags
    assert all(callable(kwargs["ready"]) for kwargs in made)  # each waits for the UI


def test_the_watchers_start_only_once_the_ui_answers(fake_ha: FakeHomeAssistant) -> None:
    asked, answering = [], threading.Event()

    def ready() -> bool:
        asked.append(answering.is_set())
        return answering.is_set()

    homes = {"home": lambda: ha.HomeAssistantClient(fake_ha.url, TOKEN)}
    with WatcherThreads(watchers_for(homes, lambda _: DagsterRuns(f"http://127.0.0.1:{free_port()}")), ready, every=0.05):
        wait_for("the watcher to ask twice", lambda: len(asked) >= 2, timeout=10, every=0.01)
        assert "subscribe_events" not in fake_ha.commands_seen and fake_ha.connections == 0  # it asked, heard no
        answering.set()
        wait_for("the watcher to subscribe", lambda: "subscribe_events" in fake_ha.commands_seen, timeout=30)
    assert asked[-1] is True


def test_dagster_runs_knows_whether_the_ui_answers() -> None:
    port = free_port()
    assert not DagsterRuns(f"http://127.0.0.1:{port}").answers()
    with answering_server_info(port):
        assert DagsterRuns(f"http://127.0.0.1:{port}").answers()
